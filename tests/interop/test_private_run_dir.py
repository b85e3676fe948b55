"""The private /var/run/numaflow that unmodified SDK sinks get (udsink_cli.isolation).

As root a mount namespace; as an unprivileged user (nobody, via setpriv) a user + mount
namespace. Either way the command writes into the given directory through
/var/run/numaflow and sees the rest of /run as before; where /var/run/numaflow does not
exist it is never created, and where it does (a Numaflow developer's laptop) nothing is
written into it. Both conditions are made in a namespace of the test's own
(tests/support/sdk_dir.py), whatever the machine has.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from udsink_cli import isolation

from tests.interop.conftest import SDK_DIR
from tests.support.sdk_dir import SdkDirView

pytestmark = pytest.mark.interop

MACHINE_DIR = Path(isolation.SDK_SOCKET_DIR)
PROBE = "echo written > /var/run/numaflow/marker && ls /run"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@SDK_DIR
def test_as_root_a_mount_namespace(sock_dir: Path, view: SdkDirView) -> None:
    assert os.geteuid() == 0, "the interop tier runs as root here"
    machine_had = MACHINE_DIR.exists()
    wrapped = isolation.private_run_dir(["sh", "-c", PROBE], sock_dir)
    try:
        done = _run(view.wrap(wrapped.argv))
    finally:
        wrapped.cleanup()
    assert done.returncode == 0, done.stderr
    assert (sock_dir / "marker").read_text() == "written\n"
    # The parent's own entries are still there inside the namespace.
    assert set(os.listdir("/run")) - {"numaflow"} <= set(done.stdout.split())
    view.assert_untouched()
    assert MACHINE_DIR.exists() == machine_had


@SDK_DIR
def test_as_an_unprivileged_user_a_user_namespace(
    sock_dir: Path, view: SdkDirView, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Build the non-root command line, then run it as nobody.
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 65534)
    isolation.namespace_problem.cache_clear()
    try:
        wrapped = isolation.private_run_dir(["sh", "-c", PROBE], sock_dir)
    finally:
        isolation.namespace_problem.cache_clear()
    assert "--user" in wrapped.argv
    os.chown(sock_dir, 65534, 65534)
    os.chown(wrapped.stash, 65534, 65534)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    try:
        done = _run(view.wrap([*as_nobody, *wrapped.argv]))
    finally:
        wrapped.cleanup()
    assert done.returncode == 0, done.stderr
    marker = sock_dir / "marker"
    assert marker.read_text() == "written\n"
    assert marker.stat().st_uid == 65534
    view.assert_untouched()


def test_no_namespace_is_one_line_saying_what_to_do(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    isolation.namespace_problem.cache_clear()
    try:
        with pytest.raises(isolation.IsolationError) as err:
            isolation.private_run_dir(["true"], sock_dir)
    finally:
        isolation.namespace_problem.cache_clear()
    message = str(err.value)
    assert "\n" not in message
    assert "`unshare` (util-linux) is not installed" in message
    assert "socket-path option" in message
    assert "--sink-image" in message
