"""kmock's Kubernetes emulator, made a little more like an API server, and the operator
running against it (the operator tier, README's Layout).

kmock stores objects and serves list/watch/patch, but it neither validates nor garbage-collects:
tests seed uids and assert on ownerReferences rather than on cascading deletion. The subclass
below adds the API-server behaviours the operator depends on (see ApplyingEmulator). The
operator itself is the real one: the real kopf registry of `handlers.build_registry`, talking
HTTP to the emulator with the real `Cluster` client.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import itertools
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock
import kopf
import kubernetes.client
from udsink_operator import constants, handlers
from udsink_operator.cluster import APPLY_CONTENT_TYPE, Cluster
from udsink_operator.metrics import OperatorMetrics

from tests.support.udsink_doc import udsink_doc
from tests.support.waiting import until_async

NAMESPACE = "shop"
UDSINKS = f"{constants.GROUP}/{constants.VERSION}/{constants.PLURAL}"
T = TypeVar("T")


def merged(base: Any, patch: Any) -> Any:
    """A JSON merge patch applied to `base` (what kmock stores for a dict patch)."""
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(base.get(key), value)
    return result


def dry_run(request: kmock.Request) -> bool:
    """A `dryRun=All` request: checked, answered, never stored."""
    return request.params.get("dryRun") == "All"


class ApplyingEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the API-server behaviours the operator relies on: server-side
    apply creates a missing object; every write gets a new resourceVersion, and a write that
    names an older one is refused with 409 (optimistic concurrency); a change of `spec`
    increments `metadata.generation`; `generateName` yields a name; a dry run stores nothing;
    a list answers only the objects its equality `labelSelector` (k=v,...) selects. kopf uses
    the resourceVersions to skip the echoes of its own patches, as against a real server."""

    _versions = itertools.count(100)

    async def _serve_list(self, request: kmock.Request) -> Any:
        found = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            wanted = dict(term.split("=", 1) for term in selector.split(","))
            found["items"] = [
                item
                for item in found["items"]
                if wanted.items() <= ((item.get("metadata") or {}).get("labels") or {}).items()
            ]
        return found

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if dry_run(request) and isinstance(request.data, dict):
            # As the API server: the object that would result, persisted nowhere.
            key = (request.resource, request.namespace, request.name)
            async with self._lock:
                # kmock's object store has no .get()
                found = self.objects[key] if key in self.objects else None  # noqa: SIM401
                live = {} if found is None or found.deleted else found.raw
            return aiohttp.web.json_response(merged(live, request.data))
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == kmock.action.UPDATE:
                request = await self._before_update(request)
            if request.action == kmock.action.CREATE:
                meta = request.data.setdefault("metadata", {})
                meta["resourceVersion"] = str(next(self._versions))
                meta.setdefault("generation", 1)
                if "name" not in meta and "generateName" in meta:  # e.g. kopf's Events
                    meta["name"] = f"{meta['generateName']}{meta['resourceVersion']}"
        return await super()._handle(request)

    async def _before_update(self, request: kmock.Request) -> kmock.Request:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            live = (
                None
                if key not in self.objects or self.objects[key].deleted
                else self.objects[key].raw
            )
        content_type = request.headers.get("Content-Type", "")
        if live is None:
            if request.subresource is None and content_type.startswith(APPLY_CONTENT_TYPE):
                # kmock routes a request only if it is the very object it recorded: swap the
                # recorded one for its create-twin (same method, path and body).
                created = attrs.evolve(request, action=kmock.action.CREATE)
                self._requests[self._requests.index(request)] = created
                return created
            return request
        meta = request.data.setdefault("metadata", {})
        expected = meta.get("resourceVersion")
        current = live.get("metadata", {}).get("resourceVersion")
        if expected is not None and expected != current:
            raise kmock.KubernetesError(
                status=409, reason="Conflict", message=f"resourceVersion {expected} != {current}"
            )
        meta["resourceVersion"] = str(next(self._versions))
        spec = request.data.get("spec") if request.subresource is None else None
        if spec is not None and merged(live.get("spec"), spec) != live.get("spec"):
            meta["generation"] = int(live.get("metadata", {}).get("generation", 1)) + 1
        return request


# The request that the current task is routing (RoutesOneRequest below).
_ROUTING: contextvars.ContextVar[kmock.Request | None] = contextvars.ContextVar(
    "_ROUTING", default=None
)


class RoutesOneRequest(kmock.RawHandler):
    """kmock's routing, shown only the request being routed.

    kmock decides whether a reaction serves a request by checking that the request is among
    the ones the reaction's filters let through out of *every request recorded so far*; each
    request thus costs a pass over the whole record, and a long run costs the square of its
    request count. While one request is routed (the checks run without awaiting), iterating
    this handler yields that request alone, so each filter judges it, and only it, by the
    same criteria. Placed right before `RawHandler` in the method order (see
    UnrecordedEmulator), so nothing awaits between setting the request and the checks.
    A served request is forgotten: the record holds the requests in flight only."""

    __slots__ = ()

    def __iter__(self) -> Iterator[kmock.Request]:
        routed = _ROUTING.get()
        if routed is not None:
            yield routed
        else:
            yield from super().__iter__()

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        token = _ROUTING.set(request)
        try:
            return await super()._handle(request)
        finally:
            _ROUTING.reset(token)
            # Served: keep no record of it (nor in the reactions' own records).
            _forget(self._requests, request)
            for reaction in self._payloads:
                _forget(reaction._requests, request)


def _forget(recorded: list[kmock.Request], request: kmock.Request) -> None:
    """Drop `request` (by identity) from a record; recent entries are near the end."""
    for i in range(len(recorded) - 1, -1, -1):
        if recorded[i] is request:
            del recorded[i]
            return


class UnrecordedEmulator(ApplyingEmulator, RoutesOneRequest):
    """ApplyingEmulator for many requests: the same API (object store, list/watch, server-side
    apply, resourceVersions, conflicts), but it keeps only the requests in flight and routes
    each one in constant time (RoutesOneRequest), and it finds an addressed object by its key
    instead of scanning all objects. It counts requests and writes as they arrive, instead of
    from a record. `list(emu)` yields the requests in flight, so `settle` and `writes` do not
    apply to it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests_seen = 0
        self.writes_seen = 0  # POST/PUT/PATCH/DELETE but dry runs, whatever their outcome

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        self.requests_seen += 1
        if request.method.value in WRITE_METHODS and not dry_run(request):
            self.writes_seen += 1
        try:
            return await super()._handle(request)
        finally:
            # Routed requests (or the create-twins ApplyingEmulator routes instead) are
            # forgotten by RoutesOneRequest; this drops the ones refused before routing.
            _forget(self._requests, request)

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        """API errors as the Status kmock renders, without the Python traceback that kmock
        formats into `details` (a fifth of the emulator's time, as the operator reads every
        child before applying it and new children answer 404)."""
        if not isinstance(exc, kmock.KubernetesError):
            return await super()._render_error(exc)
        status = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "code": exc.status,
            "status": "Failure",
            "reason": exc.reason or type(exc).__name__,
            "message": exc.message or repr(exc),
            "details": exc.details or {},
        }
        return aiohttp.web.json_response(status, status=exc.status)

    def _addressed(
        self, request: kmock.Request, namespace: str | None, name: str
    ) -> kmock.Object | None:
        """The stored object at this address: one dict lookup (kmock scans all objects)."""
        if request.resource is None:
            return None
        try:
            return self.objects[request.resource, namespace, name]
        except KeyError:
            return None

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        if request.name is None:
            return await super()._serve_fetch(request)
        async with self._lock:
            obj = self._addressed(request, request.namespace, request.name)
        if obj is None or obj.deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return obj.raw

    async def _serve_create(self, request: kmock.Request) -> Any:
        meta = request.data.get("metadata", {}) if isinstance(request.data, dict) else {}
        name = request.name or meta.get("name")
        if name is None:
            return await super()._serve_create(request)
        async with self._lock:
            obj = self._addressed(request, request.namespace or meta.get("namespace"), name)
        assert obj is not None, f"{name!r} was created in _handle"
        return obj.raw

    async def _serve_update(self, request: kmock.Request) -> Any:
        return await self._serve_changed(request, super()._serve_update, "updated")

    async def _serve_delete(self, request: kmock.Request) -> Any:
        return await self._serve_changed(request, super()._serve_delete, "deleted")

    async def _serve_changed(
        self,
        request: kmock.Request,
        unnamed: Callable[[kmock.Request], Awaitable[Any]],
        change: str,
    ) -> Any:
        """The object's latest version after `_handle` changed it (by key, not by scan)."""
        if request.name is None:
            return await unnamed(request)
        async with self._lock:
            obj = self._addressed(request, request.namespace, request.name)
        assert obj is not None, f"{request.name!r} was {change} in _handle"
        return obj.last.raw


@contextlib.asynccontextmanager
async def serving_emulator(
    emulator: Callable[[], ApplyingEmulator] = ApplyingEmulator,
) -> AsyncIterator[ApplyingEmulator]:
    """An emulator on a free local port that knows the resources the operator uses."""
    async with emulator() as emu, kmock.Server(emu):
        emu.resources[UDSINKS] = kmock.ResourceInfo(
            kind=constants.KIND,
            singular=constants.SINGULAR,
            namespaced=True,
            shortnames=set(constants.SHORT_NAMES),
            verbs={"list", "watch", "get", "patch", "create", "delete"},
            subresources={"status", "scale"},
        )
        for res, kind in [
            ("apps/v1/deployments", "Deployment"),
            ("v1/configmaps", "ConfigMap"),
            ("v1/services", "Service"),
            ("v1/secrets", "Secret"),
            ("v1/events", "Event"),
            ("v1/pods", "Pod"),
        ]:
            emu.resources[res] = kmock.ResourceInfo(
                kind=kind,
                namespaced=True,
                verbs={"list", "watch", "get", "patch", "create", "delete"},
                subresources={"status"} if kind == "Deployment" else set(),
            )
        # Discovery only: kopf waits until its backbone resources are known to the server.
        emu.resources["v1/namespaces"] = kmock.ResourceInfo(
            kind="Namespace", namespaced=False, verbs={"list", "watch", "get"}
        )
        emu.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
            kind="CustomResourceDefinition", namespaced=False, verbs={"list", "watch", "get"}
        )
        yield emu


@contextlib.asynccontextmanager
async def running_operator(
    emu: ApplyingEmulator,
    options: handlers.OperatorOptions | None = None,
    metrics: OperatorMetrics | None = None,
) -> AsyncIterator[None]:
    """The real operator (real registry, real kopf) watching NAMESPACE, standalone.

    It runs in its own thread and event loop, as in production: the emulator's streaming
    responses then stay out of kopf's task accounting, so the operator stops at once."""
    config = kubernetes.client.Configuration(host=str(emu.url).rstrip("/"))
    cluster = Cluster(config)
    registry = handlers.build_registry(
        cluster, options or handlers.OperatorOptions(sidecars="native"), metrics
    )
    settings = handlers.operator_settings()
    # kmock cannot serve the cluster-wide namespace list (it reads `/api/v1/namespaces` as a
    # namespaced path), so kopf watches the given namespace without observing namespaces.
    settings.scanning.disabled = True
    stop, ready = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry,
                    settings=settings,
                    namespaces=[NAMESPACE],
                    standalone=True,
                    stop_flag=stop,
                    ready_flag=ready,
                )
            )
        except BaseException as err:  # reported by the test below
            failure.append(err)

    thread = threading.Thread(target=run, name="udsink-operator", daemon=True)
    thread.start()
    try:
        started = await asyncio.to_thread(ready.wait, 15)
        assert started and not failure, f"the operator did not start: {failure!r}"
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 15)
        cluster.close()
    assert not thread.is_alive(), "the operator did not stop within 15s"
    assert not failure, f"the operator failed: {failure!r}"


async def eventually(check: Callable[[], T | None], within: float = 10.0) -> T:
    """Poll `check` until it returns something truthy; fail with the last value otherwise."""
    return await until_async(
        check,
        "the condition",
        within=within,
        every=0.05,
        tolerate=(KeyError, ValueError, AssertionError),
    )


async def settle(emu: ApplyingEmulator, quiet: float = 0.5, within: float = 10.0) -> None:
    """Wait until the emulator has seen no request for `quiet` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen = len(list(emu))
    calm_since = loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        now_seen = len(list(emu))
        if now_seen != seen:
            seen, calm_since = now_seen, loop.time()
        elif loop.time() - calm_since >= quiet:
            return
    raise AssertionError("the operator never went quiet")


UDSINK_PATH = f"/apis/{UDSINKS.rsplit('/', 1)[0]}/namespaces/{NAMESPACE}/{constants.PLURAL}"
DEPLOYMENTS_PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
CONFIGMAPS_PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
SECRETS_PATH = f"/api/v1/namespaces/{NAMESPACE}/secrets"
PODS_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def udsink_object(name: str = "orders", **spec: Any) -> dict[str, Any]:
    """A valid UDSink (generator source, one user-defined sink) with `spec` overrides."""
    base = {
        "replicas": 2,
        "source": {"generator": {"rate": 10}},
        "sink": {"udsink": {"container": {"image": "ghcr.io/acme/sink:1"}}},
    }
    return udsink_doc(name, {**base, **spec}, namespace=NAMESPACE, uid=f"uid-{name}")


def stored(emu: ApplyingEmulator, resource: str, name: str) -> dict[str, Any] | None:
    """The emulator's current copy of an object, or None."""
    key = (kmock.resource(resource), NAMESPACE, name)  # `in` does not parse string keys
    if key not in emu.objects or emu.objects[key].deleted:
        return None
    found: dict[str, Any] = copy.deepcopy(emu.objects[key].raw)
    return found


def writes(emu: ApplyingEmulator, since: int = 0) -> list[str]:
    """Every write request the emulator received after the first `since` requests (dry runs
    write nothing)."""
    return [
        f"{r.method.value} {r.url.path}"
        for r in list(emu)[since:]
        if r.method.value in WRITE_METHODS and not dry_run(r)
    ]


def events(emu: ApplyingEmulator) -> list[dict[str, Any]]:
    return [
        copy.deepcopy(emu.objects[key].raw)
        for key in emu.objects
        if key[0] == kmock.resource("v1/events") and not emu.objects[key].deleted
    ]


async def create(emu: ApplyingEmulator, path: str, obj: dict[str, Any]) -> None:
    async with emu.post(path, json=obj) as response:
        assert response.status < 300, await response.text()


async def patch(emu: ApplyingEmulator, path: str, body: dict[str, Any]) -> None:
    async with emu.patch(
        path, json=body, headers={"Content-Type": "application/merge-patch+json"}
    ) as response:
        assert response.status < 300, await response.text()


async def delete(emu: ApplyingEmulator, path: str) -> None:
    async with emu.delete(path) as response:
        assert response.status < 300, await response.text()


def operator_command(
    namespace: str,
    kubeconfig: Path,
    *,
    liveness_port: int,
    metrics_port: int = 0,
    extra: Sequence[str] = (),
) -> list[str]:
    """`udsink operator` as a process logged in to the emulator with `kubeconfig`: one
    namespace, no leader election, no scanning, native sidecars, its own probe ports (the
    defaults may be taken by another operator on this machine), then `extra` flags."""
    return [
        *(sys.executable, "-m", "udsink_cli.main", "operator"),
        *("--namespace", namespace, "--standalone", "--no-scanning"),
        *("--kubeconfig", str(kubeconfig), "--sidecars", "native"),
        *("--liveness", f"http://127.0.0.1:{liveness_port}/healthz"),
        *("--metrics-port", str(metrics_port)),
        *extra,
    ]
