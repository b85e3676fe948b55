"""The e2e tier's fixtures: a real Kubernetes cluster on this machine, plus kubectl and helm.

`scripts/ensure_control_plane.sh` builds etcd, kube-apiserver, kube-controller-manager and kubectl
from the pinned Go module in tests/e2e/cluster (cached per machine, keyed by version), and
`scripts/e2e_node.sh` provides a real node: containerd, runc, the CNI bridge, a kubelet and a
kube-scheduler from the same module, with the project's images built here and imported. The
session fixture makes the node's bridge first, so the API server can listen on the bridge
address (pods reach it there), then starts the control plane with its state in a tmp dir: an
admin in `system:masters` (static token), RBAC authorization (so a missing rule in the chart
fails a test), service-account token signing and the root CA publisher (so the operator's pod
logs in as the chart's ServiceAccount), and the controllers that make Deployments real. Then
the node joins. When a component does not come up, the session fails with the last lines of
every component's log; after the session the node harness verifies it left nothing behind.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import threading
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
import yaml
from udsink_cli.lifeline import tied_to_parent
from udsink_operator import constants

from tests.support.kafka_broker import KafkaBroker, running_broker
from tests.support.kubeconfig import write_kubeconfig
from tests.support.ports import free_port
from tests.support.waiting import until

ROOT = Path(__file__).parents[2]
# The project's one version: the tag scripts/build_images.sh gives the images.
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
EXAMPLE_SINKS_IMAGE = f"ghcr.io/udsink/example-sinks:{PROJECT_VERSION}"
ENSURE_CONTROL_PLANE = ROOT / "scripts" / "ensure_control_plane.sh"
NODE_HARNESS = ROOT / "scripts" / "e2e_node.sh"
ADMIN_USER = "e2e-admin"
SERVICE_CIDR = "10.96.0.0/16"
# The controllers this tier relies on; each name is the kube-controller-manager's own.
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "garbage-collector-controller",
    "namespace-controller",
    # Creates each namespace's `default` ServiceAccount, which pods need to be admitted.
    "serviceaccount-controller",
    # Publishes `kube-root-ca.crt` in every namespace: pods with a ServiceAccount token (the
    # operator's) mount it, and do not start without it.
    "root-ca-certificate-publisher-controller",
)


LOG_TAIL_LINES = 40
# What the API server's audit log keeps: every request made as a ServiceAccount (the operators
# the chart installs), writes with their bodies; nothing of the admin, the kubelet or the
# controllers. tests/e2e/test_privilege.py reads it to compare the verbs the operator used
# with the ones its role grants.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "Request",
            "userGroups": ["system:serviceaccounts"],
            "verbs": ["create", "update", "patch"],
        },
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


@dataclass
class Component:
    """One control-plane process and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log_file.close()


@dataclass
class ControlPlane:
    """A running control plane: its address, the admin's credentials and the binaries."""

    bin_dir: Path
    workdir: Path
    server: str
    ca_file: Path
    admin_token: str
    admin_kubeconfig: Path
    components: list[Component] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.server.removeprefix("https://").rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.server.rsplit(":", 1)[1])

    @property
    def kubectl_bin(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines): ServiceAccounts' requests, see AUDIT_POLICY."""
        return self.workdir / "audit.log"

    def logs(self) -> str:
        """The last lines of every component's log, for failure messages."""
        return "\n".join(
            f"--- {c.name} (exit code {c.process.poll()}), last lines of {c.log_path}:\n{c.tail()}"
            for c in self.components
        )

    def write_kubeconfig(self, path: Path, user: str, token: str) -> Path:
        """A kubeconfig for `user` authenticating with a bearer token."""
        write_kubeconfig(path, self.server, user, token, ca_file=self.ca_file)
        return path

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        """The environment kubectl and helm run in: only this cluster's kubeconfig."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(kubeconfig or self.admin_kubeconfig)
        # helm keeps its caches and repository config under these; keep them out of $HOME.
        for var, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config")):
            env[var] = str(self.workdir / "helm" / sub)
        env["HELM_DATA_HOME"] = str(self.workdir / "helm" / "data")
        return env

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 90,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl; with `check`, a non-zero exit fails with its stderr."""
        return run_tool(
            [str(self.kubectl_bin), *args],
            env=self.env(kubeconfig),
            stdin=stdin,
            check=check,
            timeout=timeout,
        )

    def get_json(self, *args: str, kubeconfig: Path | None = None) -> dict[str, Any]:
        """`kubectl get ... -o json`, parsed."""
        found: dict[str, Any] = json.loads(
            self.kubectl("get", *args, "-o", "json", kubeconfig=kubeconfig).stdout
        )
        return found


def run_tool(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    stdin: str | None = None,
    check: bool = True,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(argv)}` exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result


def control_plane_binaries() -> Path:
    """The folder with the four binaries (built on first use; fails loudly if it cannot)."""
    result = subprocess.run(
        ["bash", str(ENSURE_CONTROL_PLANE)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    folder = Path(lines[-1]) if lines else None
    if result.returncode != 0 or folder is None or not (folder / ".complete").is_file():
        pytest.fail(
            f"cannot provide the Kubernetes control plane with {ENSURE_CONTROL_PLANE} "
            f"(exit {result.returncode}):\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return folder


def write_service_account_key(folder: Path) -> Path:
    """The private key the API server signs ServiceAccount tokens with; it also reads the public
    half from the same file to check them."""
    key = folder / "sa.key"
    result = subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"openssl could not make a service-account key: {result.stderr}", pytrace=False)
    return key


def start(plane: ControlPlane, name: str, argv: Sequence[str]) -> Component:
    log_path = plane.workdir / f"{name}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        list(argv), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    component = Component(name, process, log_path, log_file)
    plane.components.append(component)
    return component


def probe(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> bool:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until_up(
    plane: ControlPlane,
    component: Component,
    url: str,
    *,
    token: str | None = None,
    context: ssl.SSLContext | None = None,
    within: float = 120.0,
) -> None:
    """Poll `url` until it answers 200; fail with every log if the process dies or times out."""

    def exited() -> str | None:
        code = component.process.poll()
        return None if code is None else f"{component.name} exited ({code})"

    try:
        until(
            lambda: probe(url, token, context),
            f"{component.name}: {url} to answer",
            within=within,
            every=0.3,
            abort=exited,
        )
    except AssertionError as err:
        pytest.fail(f"{err}\n{plane.logs()}", pytrace=False)


def unverified_tls() -> ssl.SSLContext:
    # Only for components' /healthz before their serving certificate is known.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def new_control_plane(bin_dir: Path, workdir: Path, host: str) -> ControlPlane:
    """Addresses and credentials of a control plane that is not started yet, served on `host`
    (the node's bridge address, so pods reach it; it is a local address of this machine)."""
    server = f"https://{host}:{free_port()}"
    return ControlPlane(
        bin_dir=bin_dir,
        workdir=workdir,
        server=server,
        # The API server signs its serving certificate with a CA it makes itself and writes
        # both into this file (certificate first, CA after).
        ca_file=workdir / "apiserver-certs" / "apiserver.crt",
        admin_token=secrets.token_hex(16),
        admin_kubeconfig=workdir / "admin.kubeconfig",
    )


def start_control_plane(plane: ControlPlane) -> None:
    """etcd, then the API server, then the controller manager; each waited for."""
    bin_dir, workdir, server = plane.bin_dir, plane.workdir, plane.server
    host = plane.host
    admin_token = plane.admin_token
    etcd_port, peer_port = free_port(), free_port()
    etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
    etcd = start(
        plane,
        "etcd",
        [
            str(bin_dir / "etcd"),
            "--name=e2e",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=e2e={peer_url}",
            # Test data: durability across power loss is not needed, speed is.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
    )
    wait_until_up(plane, etcd, f"{etcd_url}/health")

    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    sa_key = write_service_account_key(workdir)
    audit_policy = workdir / "audit-policy.yaml"
    audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    apiserver = start(
        plane,
        "kube-apiserver",
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            # The serving certificate it makes for itself names the advertised address.
            f"--bind-address={host}",
            f"--advertise-address={host}",
            # `kubectl logs` reaches the kubelet at the node's address, not its name (no DNS).
            "--kubelet-preferred-address-types=InternalIP",
            f"--secure-port={server.rsplit(':', 1)[1]}",
            f"--cert-dir={plane.ca_file.parent}",
            f"--token-auth-file={tokens}",
            # RBAC only: the chart's Roles are what the operator may do, nothing else.
            "--authorization-mode=RBAC",
            # As on OpenShift and hardened clusters: setting blockOwnerDeletion on a child needs
            # update on udsinks/finalizers, so a chart missing that rule fails here.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # No Endpoints for the `kubernetes` Service (a loopback address is not allowed).
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            f"--audit-policy-file={audit_policy}",
            f"--audit-log-path={plane.audit_log}",
        ],
    )
    wait_until_up(plane, apiserver, f"{server}/readyz", token=admin_token, context=unverified_tls())
    plane.write_kubeconfig(plane.admin_kubeconfig, ADMIN_USER, admin_token)

    controller_port = free_port()
    controller_manager = start(
        plane,
        "kube-controller-manager",
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={plane.admin_kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={controller_port}",
            f"--cert-dir={workdir / 'controller-manager-certs'}",
            # What the root CA publisher puts into every namespace's kube-root-ca.crt.
            f"--root-ca-file={plane.ca_file}",
            "--profiling=false",
        ],
    )
    wait_until_up(
        plane,
        controller_manager,
        f"https://127.0.0.1:{controller_port}/healthz",
        context=unverified_tls(),
    )


@dataclass
class Node:
    """The node harness (scripts/e2e_node.sh) for one session: its state folder and address."""

    state: Path
    name: str = ""
    ip: str = ""
    containerd_socket: str = ""
    # The numaflow-go sink image the harness builds (tests/e2e/gosink).
    go_sink_image: str = ""

    def run(self, *args: str, timeout: float = 3600) -> dict[str, str]:
        """Run one harness command; fail the session with its output if it fails. Returns the
        `KEY=value` lines it printed."""
        env = {**os.environ, "UDSINK_NODE_STATE": str(self.state)}
        result = subprocess.run(
            ["bash", str(NODE_HARNESS), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`scripts/e2e_node.sh {' '.join(args)}` exited {result.returncode}:\n"
                f"{result.stderr[-6000:]}",
                pytrace=False,
            )
        found = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        self.name = found.get("NODE_NAME", self.name)
        self.ip = found.get("NODE_IP", self.ip)
        self.containerd_socket = found.get("CONTAINERD_SOCKET", self.containerd_socket)
        self.go_sink_image = found.get("GO_SINK_IMAGE", self.go_sink_image)
        return found

    def kill_container(self, container_id: str) -> None:
        """SIGKILL a container's process through containerd, as a crash would end it."""
        runtime, _, cid = container_id.partition("://")
        assert runtime == "containerd" and cid, f"not a containerd container id: {container_id}"
        ctr = ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io"]
        run_tool([*ctr, "tasks", "kill", "--signal=SIGKILL", cid], env=dict(os.environ))


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The node's packages, binaries and images (built now), and its bridge; `down` at the end
    stops everything the harness started and fails the session if anything was left behind."""
    harness = Node(state=tmp_path_factory.mktemp("node"))
    try:
        harness.run("prepare")
        harness.run("bridge")
        yield harness
    finally:
        harness.run("down", timeout=300)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory, node: Node) -> Iterator[ControlPlane]:
    """One control plane and its node for the whole session (torn down at its end)."""
    bin_dir = control_plane_binaries()
    workdir = tmp_path_factory.mktemp("kube")
    plane = new_control_plane(bin_dir, workdir, node.ip)
    try:
        start_control_plane(plane)
        # The serving certificate the API server made for itself must verify for kubectl.
        plane.kubectl("version", "--output=json")
        node.run("up", str(plane.admin_kubeconfig))
        yield plane
    finally:
        # The node goes first, while the API server still answers its kubelet.
        try:
            node.run("down", timeout=300)
        finally:
            for component in reversed(plane.components):
                component.stop()


@pytest.fixture(scope="session")
def broker(node: Node) -> Iterator[KafkaBroker]:
    """A real Kafka broker listening on and advertising the node's bridge address: pods reach
    it there, the tests reach it too (it is a local address). Its secured listeners (TLS,
    mTLS, SASL) present a server certificate for that address."""
    with running_broker(host=node.ip, secured=True) as started:
        yield started


def runnable(doc: Any, bootstrap: str) -> Any:
    """A UDSink manifest made to run on this node: every Kafka connection points at the test
    broker, every sink container runs the example-sinks image built here (never pulled)."""
    match doc:
        case dict():
            found = {k: runnable(v, bootstrap) for k, v in doc.items()}
            if isinstance(found.get("brokers"), list):
                found["brokers"] = [bootstrap]
            if isinstance(found.get("container"), dict) and "image" in found["container"]:
                found["container"]["image"] = EXAMPLE_SINKS_IMAGE
            return found
        case list():
            return [runnable(v, bootstrap) for v in doc]
    return doc


# --- The operator, installed by the chart and run as its ServiceAccount ---

CHART = ROOT / "charts" / "udsink-operator"
# The operator re-checks failed UDSinks this often (seconds): a test creating a missing Secret
# then waits seconds, not the chart's default minute.
RECHECK_SECONDS = 2


# Pod Security Standard every namespace of this tier enforces: our pods must pass it.
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"


@dataclass
class OperatorRun:
    """A helm release of the chart: the operator runs in its pod, as its ServiceAccount."""

    plane: ControlPlane
    helm: Path
    release: str
    namespace: str
    service_account: str
    deployment: str
    args: list[str]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def helm_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_tool([str(self.helm), *args], env=self.plane.env(), check=check, timeout=180)

    def log_text(self) -> str:
        """Everything the operator's container logged so far (read through the kubelet)."""
        result = self.plane.kubectl(
            "logs", f"deployment/{self.deployment}", f"--namespace={self.namespace}", check=False
        )
        return result.stdout if result.returncode == 0 else f"(no logs: {result.stderr.strip()})"

    def logs(self, lines: int = 60) -> str:
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- operator pod {self.namespace}/{self.deployment}, last lines:\n{tail}"


def ensure_namespace(plane: ControlPlane, namespace: str) -> None:
    """A namespace enforcing the restricted Pod Security Standard (created if missing)."""
    if plane.kubectl("get", "namespace", namespace, check=False).returncode != 0:
        plane.kubectl("create", "namespace", namespace)
    plane.kubectl("label", "--overwrite", "namespace", namespace, RESTRICTED)


def install_operator(
    plane: ControlPlane,
    helm: Path,
    release: str,
    namespace: str,
    values: Sequence[str],
    chart: Path = CHART,
) -> OperatorRun:
    """`helm install` the chart (the working tree's, or `chart`) with the image built by the
    node harness, and wait until the operator's pod is Ready through its real readiness probe."""
    ensure_namespace(plane, namespace)
    workdir = plane.workdir / f"operator-{release}"
    workdir.mkdir()
    # No kube-proxy: the `kubernetes` Service routes nothing, so the pod is told where the API
    # server listens (the node's bridge address; its certificate names that address).
    values_file = workdir / "values.yaml"
    values_file.write_text(
        yaml.safe_dump(
            {
                "extraEnv": [
                    {"name": "KUBERNETES_SERVICE_HOST", "value": plane.host},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": str(plane.port)},
                ]
            }
        )
    )
    run_tool(
        [
            str(helm),
            "install",
            release,
            str(chart),
            f"--namespace={namespace}",
            f"--values={values_file}",
            f"--set=runtime.recheckIntervalSeconds={RECHECK_SECONDS}",
            "--set=logFormat=text",
            *(f"--set={v}" for v in values),
            "--wait",
            "--timeout=180s",
        ],
        env=plane.env(),
        timeout=240,
    )
    deployments = plane.get_json(
        "deployments", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}"
    )["items"]
    assert len(deployments) == 1, f"chart release {release} made {len(deployments)} Deployments"
    pod_spec = deployments[0]["spec"]["template"]["spec"]
    run = OperatorRun(
        plane=plane,
        helm=helm,
        release=release,
        namespace=namespace,
        service_account=pod_spec["serviceAccountName"],
        deployment=deployments[0]["metadata"]["name"],
        args=list(pod_spec["containers"][0]["args"]),
    )
    plane.kubectl(
        "rollout",
        "status",
        f"deployment/{run.deployment}",
        f"--namespace={namespace}",
        "--timeout=120s",
        timeout=150,
    )
    return run


def uninstall(run: OperatorRun) -> None:
    """`helm uninstall` (if still installed), waiting until the operator's pod is gone."""
    installed = run.helm_run("status", run.release, f"--namespace={run.namespace}", check=False)
    if installed.returncode == 0:
        run.helm_run("uninstall", run.release, f"--namespace={run.namespace}", "--wait")


# --- Every version of every UDSink, for the no-finalizer promise ---


class UDSinkWatch:
    """`kubectl get udsinks --all-namespaces --watch`: one line per version of a UDSink the
    API server reports (`<namespace>/<name> <phase> finalizers=<list>`), read by a thread.

    `ensure_running` (from the main thread, so the kernel ties kubectl to pytest) restarts
    kubectl when it ended: before the CRD exists, or when the server closes a long watch."""

    FORMAT = (
        "{.metadata.namespace}/{.metadata.name} {.status.phase} "
        'finalizers={.metadata.finalizers}{"\\n"}'
    )

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        argv = [str(self.plane.kubectl_bin), "get", "udsinks", "--all-namespaces", "--watch"]
        argv.append(f"--output=jsonpath={self.FORMAT}")
        env = self.plane.env()
        self.process = subprocess.Popen(
            tied_to_parent(argv, env=env),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self.reader.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip():
                self.lines.append(line.strip())

    def with_finalizers(self) -> list[str]:
        return [line for line in self.lines if not line.endswith("finalizers=")]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.reader is not None:
            self.reader.join(timeout=10)


@pytest.fixture(scope="module")
def udsink_watch(control_plane: ControlPlane) -> Iterator[UDSinkWatch]:
    """Watches every UDSink for a test module; fails its teardown if any version of any
    UDSink carried a finalizer."""
    watch = UDSinkWatch(control_plane)
    try:
        yield watch
    finally:
        watch.stop()
    assert not watch.with_finalizers(), "UDSinks with a finalizer:\n" + "\n".join(
        watch.with_finalizers()
    )


# --- Helpers the e2e modules share ---

EXAMPLES = ROOT / "examples"
MINIMAL = EXAMPLES / "01-minimal" / "udsink.yaml"
MIRROR = EXAMPLES / "03-kafka-to-kafka-headers" / "udsink.yaml"
# The Secrets (and keys) example 03 reads its Kafka credentials from.
MIRROR_SECRETS = {
    "kafka-a-ca": ["ca.crt"],
    "kafka-a-user": ["username", "password"],
    "kafka-b-ca": ["ca.crt"],
    "kafka-b-client": ["tls.crt", "tls.key"],
}
GITOPS = EXAMPLES / "05-gitops" / "udsinks"
ARGOCD_MANAGER = "argocd-controller"

T = TypeVar("T")


# --- helpers ---


def eventually(
    check: Callable[[], T | None], what: str, logs: Callable[[], str], within: float = 90
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` with the logs."""
    return until(check, what, within=within, every=0.3, details=logs)


def example(
    path: Path,
    broker: KafkaBroker,
    *,
    name: str | None = None,
    namespace: str | None = None,
    **spec: Any,
) -> str:
    """An example manifest as YAML, made runnable here (the test broker, the example sink
    image), renamed / moved / with top-level spec keys replaced."""
    doc = runnable(yaml.safe_load(path.read_text()), broker.bootstrap)
    if name is not None:
        doc["metadata"]["name"] = name
    if namespace is not None:
        doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


def get_or_none(plane: ControlPlane, *args: str) -> dict[str, Any] | None:
    result = plane.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def children(plane: ControlPlane, namespace: str, name: str) -> dict[str, dict[str, Any] | None]:
    ns = f"--namespace={namespace}"
    return {
        "Deployment": get_or_none(plane, "deployment", name, ns),
        "ConfigMap": get_or_none(plane, "configmap", f"{name}{constants.CONFIG_MAP_SUFFIX}", ns),
        "Service": get_or_none(plane, "service", f"{name}{constants.METRICS_SERVICE_SUFFIX}", ns),
    }


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            found: dict[str, Any] = cond
            return found
    return {}


def pods_of(plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = plane.get_json(
        "pods", f"--namespace={namespace}", "-l", f"{constants.LABEL_UDSINK}={name}"
    )["items"]
    return found


def ready_pods(plane: ControlPlane, namespace: str, name: str) -> int:
    """How many of the UDSink's pods the kubelet reports Ready (their probes passed)."""
    return sum(
        condition(p, "Ready").get("status") == "True" for p in pods_of(plane, namespace, name)
    )


def pod_report(plane: ControlPlane, namespace: str) -> str:
    """Pods, their container states and the namespace's events, for failure messages."""
    pods = plane.kubectl("get", "pods", "-o", "wide", f"--namespace={namespace}", check=False)
    events = plane.kubectl("get", "events", f"--namespace={namespace}", check=False)
    return f"--- pods of {namespace}:\n{pods.stdout}\n--- events:\n{events.stdout[-4000:]}"


def wait_ready(plane: ControlPlane, op: OperatorRun, namespace: str, name: str, pods: int) -> None:
    """The kubelet runs the pods until their readiness probes pass; the UDSink reports Ready
    with that many ready replicas."""
    eventually(
        lambda: ready_pods(plane, namespace, name) == pods,
        f"{pods} ready pods of {namespace}/{name}",
        lambda: op.logs() + "\n" + pod_report(plane, namespace),
        within=180,
    )
    eventually(
        lambda: (
            (u := plane.get_json("udsink", name, f"--namespace={namespace}"))
            and condition(u, constants.CONDITION_READY).get("status") == "True"
            and u["status"].get("readyReplicas") == pods
        ),
        f"UDSink {namespace}/{name} Ready with {pods} ready replicas",
        lambda: op.logs() + "\n" + pod_report(plane, namespace),
    )


def all_children(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    """The three children once all exist, else None."""
    found = children(plane, namespace, name)
    return dict(found) if all(found.values()) else None


def udsink_where(
    plane: ControlPlane, namespace: str, name: str, kind: str, status: str
) -> dict[str, Any] | None:
    """The UDSink once its condition `kind` has `status`, else None."""
    udsink = plane.get_json("udsink", name, f"--namespace={namespace}")
    return udsink if condition(udsink, kind).get("status") == status else None


def udsink_in_phase(
    plane: ControlPlane, namespace: str, name: str, phase: str
) -> dict[str, Any] | None:
    udsink = plane.get_json("udsink", name, f"--namespace={namespace}")
    return udsink if (udsink.get("status") or {}).get("phase") == phase else None


def newer_than(plane: ControlPlane, old: dict[str, Any]) -> dict[str, Any] | None:
    """The object `old` once its generation has moved on, else None."""
    meta = old["metadata"]
    new = plane.get_json(old["kind"].lower(), meta["name"], f"--namespace={meta['namespace']}")
    return new if new["metadata"]["generation"] > meta["generation"] else None


def explain(plane: ControlPlane, field: str) -> str | None:
    # The CRD's schema reaches the published OpenAPI a moment after the CRD is established.
    result = plane.kubectl("explain", field, check=False)
    return result.stdout if result.returncode == 0 else None


def resource_versions(plane: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    found = {
        k: v["metadata"]["resourceVersion"]
        for k, v in children(plane, namespace, name).items()
        if v
    }
    udsink = plane.get_json("udsink", name, f"--namespace={namespace}")
    found["UDSink"] = udsink["metadata"]["resourceVersion"]
    return found


def settled(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    """The UDSink once the operator has acted on its latest generation."""
    udsink = plane.get_json("udsink", name, f"--namespace={namespace}")
    status = udsink.get("status") or {}
    done = status.get("observedGeneration") == udsink["metadata"]["generation"]
    return udsink if done else None


def helm_test(run: OperatorRun) -> subprocess.CompletedProcess[str]:
    """`helm test` of the release (the chart's templates/tests); its result, not checked."""
    return run.helm_run(
        "test", run.release, f"--namespace={run.namespace}", "--timeout=120s", check=False
    )


def assert_helm_test_passes(plane: ControlPlane, run: OperatorRun) -> None:
    """`helm test` passes in a namespace enforcing Pod Security `restricted`, and removes its
    pod and ServiceAccount after the pass."""
    labels = plane.get_json("namespace", run.namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    test_pod = f"{run.deployment}-test"
    result = helm_test(run)
    logs = plane.kubectl("logs", test_pod, f"--namespace={run.namespace}", check=False)
    assert result.returncode == 0, (
        f"helm test failed:\n{result.stdout}{result.stderr}\n--- test pod:\n"
        f"{logs.stdout}{logs.stderr}\n{pod_report(plane, run.namespace)}\n{run.logs()}"
    )
    assert "Phase:          Succeeded" in result.stdout, result.stdout
    assert get_or_none(plane, "pod", test_pod, f"--namespace={run.namespace}") is None
    assert get_or_none(plane, "serviceaccount", test_pod, f"--namespace={run.namespace}") is None


def rechecks(run: OperatorRun) -> int:
    """How often the operator logged a re-check of a Failed UDSink (kopf's log lines do not
    name the object: use an operator watching one such UDSink)."""
    return sum(
        "'reconcile-create' failed temporarily" in line and "re-checking in" in line
        for line in run.log_text().splitlines()
    )
