"""Which OCI runtime podman and buildah are told to use: chosen here, never left to the host.

Debian's podman depends on "crun | runc", so which of the two a machine has (and which podman
and buildah then pick by default) depends on what apt happened to install first. crun refuses
a cgroup v1 *hybrid* host whose unified hierarchy has controllers ("cgroups in hybrid mode not
supported, drop all controllers from cgroupv2"); runc runs there. So the choice is made from
the runtimes installed and the host's cgroup layout, and passed explicitly (`--runtime PATH`):
runc wherever it is installed (it runs on cgroup v1, hybrid and v2 hosts alike), else crun
where crun can run (any host but a hybrid one with controllers in its unified hierarchy),
otherwise a clear error saying to install runc. runc comes first even on cgroup v2, where
crun runs too, so that one host's result does not depend on which runtime apt brought
(measured on a simulated v2 host without CAP_SYS_RESOURCE: runc ran, crun failed on
`setrlimit (RLIM_MEMLOCK)`).

`UDSINK_OCI_RUNTIME` (a name on PATH or a path) overrides the choice. Standard library only:
`scripts/build_images.sh` and `.ci/run` run this module from the source tree
(`python3 operator/udsink_cli/oci_runtime.py` prints the path) before anything is installed,
and `udsink run --sink-image` uses it for podman (docs/compatibility.md).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn, TypeAlias

ENV = "UDSINK_OCI_RUNTIME"
RUNTIMES = ("crun", "runc")
CgroupLayout: TypeAlias = Literal["v2", "hybrid", "v1"]


class OciRuntimeError(RuntimeError):
    """No OCI runtime that can run containers on this host; the message says what to do."""


@dataclass(frozen=True)
class Host:
    """What the choice depends on: the cgroup layout, and for a hybrid host whether its
    unified hierarchy has controllers enabled (what crun refuses)."""

    layout: CgroupLayout
    unified_controllers: tuple[str, ...] = ()


def read_host(mountinfo: str | None = None) -> Host:
    """The cgroup layout from /proc/self/mountinfo (or the text given)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    v1 = False
    unified: str | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fstype = right.split()[0]
        point = left.split()[4]
        if fstype == "cgroup2":
            if point == "/sys/fs/cgroup":
                return Host("v2")
            unified = point
        elif fstype == "cgroup":
            v1 = True
    if not v1:
        return Host("v2")  # no v1 hierarchy at all: nothing crun would refuse
    if unified is None:
        return Host("v1")
    controllers = Path(unified, "cgroup.controllers")
    enabled = tuple(controllers.read_text().split()) if controllers.exists() else ()
    return Host("hybrid", enabled)


def choose(host: Host, which: Callable[[str], str | None] = shutil.which) -> str:
    """The path of the OCI runtime to use on `host` (see the module doc)."""
    found = {name: which(name) for name in RUNTIMES}
    crun_refused = host.layout == "hybrid" and bool(host.unified_controllers)
    for name in ("runc", "crun"):
        path = found[name]
        if path is not None and not (name == "crun" and crun_refused):
            return path
    installed = [name for name, path in found.items() if path]
    if installed:
        reason = (
            "crun is installed but refuses this cgroup v1 hybrid host (its unified hierarchy "
            f"has controllers: {' '.join(host.unified_controllers)})"
        )
    else:
        reason = "neither crun nor runc is installed"
    _fail(f"{reason}; install runc (Debian/Ubuntu: apt-get install runc) or set {ENV}")


def oci_runtime(environ: Mapping[str, str] = os.environ) -> str:
    """The runtime podman/buildah are told to use: $UDSINK_OCI_RUNTIME, else `choose`."""
    configured = environ.get(ENV, "").strip()
    if configured:
        path = shutil.which(configured)
        if path is None:
            _fail(f"{ENV}={configured}: no such runtime (a name on PATH or a path to crun/runc)")
        return path
    return choose(read_host())


def _fail(message: str) -> NoReturn:
    raise OciRuntimeError(f"no OCI runtime for containers: {message}")


def main() -> int:
    try:
        print(oci_runtime())
    except OciRuntimeError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
