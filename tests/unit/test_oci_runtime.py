"""The OCI runtime podman and buildah are told to use (udsink_cli.oci_runtime), by host layout
and by what is installed; and podman gets it from `udsink run` unless its command names one."""

from __future__ import annotations

from pathlib import Path

import pytest
from udsink_cli import isolation, oci_runtime
from udsink_cli.oci_runtime import Host, OciRuntimeError, choose, read_host

# /proc/self/mountinfo lines (fields up to the mount point matter, then " - fstype").
V1 = "30 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
UNIFIED_ROOT = "28 25 0:25 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"


def _which(*installed: str):  # type: ignore[no-untyped-def]
    return lambda name: f"/usr/bin/{name}" if name in installed else None


@pytest.mark.parametrize(
    ("host", "installed", "chosen"),
    [
        (Host("v2"), ("crun", "runc"), "runc"),
        (Host("v2"), ("crun",), "crun"),
        (Host("v1"), ("crun", "runc"), "runc"),
        (Host("v1"), ("crun",), "crun"),
        (Host("hybrid", ("hugetlb",)), ("crun", "runc"), "runc"),
        (Host("hybrid", ()), ("crun",), "crun"),
    ],
)
def test_the_runtime_follows_the_host(host: Host, installed: tuple[str, ...], chosen: str) -> None:
    assert choose(host, _which(*installed)) == f"/usr/bin/{chosen}"


def test_crun_alone_on_a_hybrid_host_with_controllers_is_a_clear_error() -> None:
    with pytest.raises(OciRuntimeError) as err:
        choose(Host("hybrid", ("hugetlb", "pids")), _which("crun"))
    message = str(err.value)
    assert "crun is installed but refuses this cgroup v1 hybrid host" in message
    assert "hugetlb pids" in message
    assert "apt-get install runc" in message
    assert oci_runtime.ENV in message


def test_no_runtime_at_all_says_so() -> None:
    with pytest.raises(OciRuntimeError, match="neither crun nor runc is installed"):
        choose(Host("v2"), _which())


def test_layouts_are_read_from_mountinfo(tmp_path: Path) -> None:
    assert read_host(UNIFIED_ROOT) == Host("v2")
    assert read_host(V1) == Host("v1")
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("hugetlb\n")
    hybrid = V1 + f"41 31 0:38 / {unified} rw,relatime - cgroup2 cgroup2 rw\n"
    assert read_host(hybrid) == Host("hybrid", ("hugetlb",))
    (unified / "cgroup.controllers").write_text("\n")
    assert read_host(hybrid) == Host("hybrid", ())


def test_this_host_gets_a_runtime_that_exists() -> None:
    # .ci/run installs runc, so whatever the layout a runtime is chosen here.
    path = oci_runtime.oci_runtime({})
    assert Path(path).is_file()
    assert Path(path).name in oci_runtime.RUNTIMES


def test_the_override_must_name_a_runtime() -> None:
    with pytest.raises(OciRuntimeError, match="UDSINK_OCI_RUNTIME=no-such-rt: no such runtime"):
        oci_runtime.oci_runtime({oci_runtime.ENV: "no-such-rt"})
    assert oci_runtime.oci_runtime({oci_runtime.ENV: "sh"}).endswith("/sh")


def test_podman_is_told_the_runtime_unless_its_command_names_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(oci_runtime.ENV, "sh")
    engine = isolation.with_runtime(("/usr/bin/podman", "--root", "/x"))
    assert engine[:3] == ("/usr/bin/podman", "--runtime", engine[2])
    assert engine[2].endswith("/sh") and engine[3:] == ("--root", "/x")
    named = ("/usr/bin/podman", "--runtime=/opt/runc")
    assert isolation.with_runtime(named) == named
    assert isolation.with_runtime(("/usr/bin/docker",)) == ("/usr/bin/docker",)
