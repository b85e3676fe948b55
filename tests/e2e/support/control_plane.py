"""A real Kubernetes control plane on this machine: etcd, kube-apiserver and
kube-controller-manager as processes, and kubectl against it.

`scripts/ensure_control_plane.sh` builds etcd, kube-apiserver, kube-controller-manager and
kubectl from the pinned Go module in tests/e2e/cluster (cached per machine, keyed by version).
`start_control_plane` runs them with their state in a folder of the test's: an admin in
`system:masters` (static token), RBAC authorization (so a missing rule in the chart fails a
test), service-account token signing and the root CA publisher (so the operator's pod logs in
as the chart's ServiceAccount), the controllers that make Deployments real, and an audit log of
what ServiceAccounts call. When a component does not come up, the test fails with the last
lines of every component's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.e2e.support.tools import run_tool
from tests.support.kubeconfig import write_kubeconfig
from tests.support.ports import free_port
from tests.support.processes import terminate
from tests.support.waiting import until

ROOT = Path(__file__).parents[3]
ENSURE_CONTROL_PLANE = ROOT / "scripts" / "ensure_control_plane.sh"
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
        terminate(self.process, grace_s=15, kill_wait_s=5)
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

    def stop(self) -> None:
        """Stop every component, the last started first."""
        for component in reversed(self.components):
            component.stop()


def get_or_none(plane: ControlPlane, *args: str) -> dict[str, Any] | None:
    """`kubectl get ... -o json`, parsed, or None when the object does not exist."""
    result = plane.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The status condition of type `kind` of an object (a pod, a UDSink), or {}."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            found: dict[str, Any] = cond
            return found
    return {}


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


@contextlib.contextmanager
def running_control_plane(workdir: Path, host: str) -> Iterator[ControlPlane]:
    """A control plane served on `host` with its state in `workdir`, started (the binaries
    built first when needed) and stopped on exit."""
    plane = new_control_plane(control_plane_binaries(), workdir, host)
    try:
        start_control_plane(plane)
        yield plane
    finally:
        plane.stop()


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
