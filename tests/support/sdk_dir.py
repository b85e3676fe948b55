"""A command run where /var/run/numaflow is absent, or present (as on a Numaflow developer's
laptop), whatever the machine itself has: the condition is made in a private mount namespace,
so a test proves both cases and never depends on, nor changes, the machine's own folder.

`SdkDirView(tmp, present=...)` wraps an argv; after the command ran, `view_after()` says what
the command's own view of /var/run/numaflow held when it ended (None when absent), and for a
present folder `laptop` is the directory bound there, with the file a developer left in it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from udsink_cli.isolation import REBUILD_PARENT, SDK_SOCKET_DIR

LEFT_BY_THE_DEVELOPER = "numaflow-dev-sink.sock.keep"

# $1 stash, $2 "present" or "absent", $3 the laptop folder, $4 the report file, $5
# /var/run/numaflow; then the command. Not exec'd: the view is reported after it ends.
_SCRIPT = (
    "set -eu\n"
    + REBUILD_PARENT
    + r"""
stash=$1 mode=$2 laptop=$3 report=$4 target=$5
shift 5
parent=$(readlink -f "$(dirname "$target")")
rebuild_parent "$stash" "$parent" "${target##*/}"
if [ "$mode" = present ]; then
  mkdir "$parent/${target##*/}"
  mount -n --bind "$laptop" "$target"
fi
set +e
"$@"
rc=$?
if [ -d "$target" ]; then ls -A "$target" > "$report"; else : > "$report.absent"; fi
exit $rc
"""
)


class SdkDirView:
    def __init__(self, tmp: Path, *, present: bool) -> None:
        self.present = present
        self.stash = Path(tempfile.mkdtemp(prefix="udsink-test-stash-"))
        self.laptop = tmp / "laptop-numaflow"
        self.laptop.mkdir()
        (self.laptop / LEFT_BY_THE_DEVELOPER).write_text("a developer's file\n")
        self.report = tmp / "sdk-dir-view.txt"

    def wrap(self, argv: list[str]) -> list[str]:
        mode = "present" if self.present else "absent"
        unshare = shutil.which("unshare")
        assert unshare is not None, "unshare (util-linux) is needed to make the condition"
        return [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            _SCRIPT,
            "udsink-test-sdk-dir",
            str(self.stash),
            mode,
            str(self.laptop),
            str(self.report),
            SDK_SOCKET_DIR,
            *argv,
        ]

    def view_after(self) -> list[str] | None:
        """The entries of /var/run/numaflow as the command's namespace saw them at its end,
        or None when it did not exist there."""
        if Path(f"{self.report}.absent").exists():
            return None
        assert self.report.exists(), "the wrapper did not report (did the namespace start?)"
        return sorted(self.report.read_text().split())

    def cleanup(self) -> None:
        shutil.rmtree(self.stash, ignore_errors=True)

    def assert_untouched(self) -> None:
        """The command neither created the folder (absent) nor wrote into it (present)."""
        if self.present:
            assert self.view_after() == [LEFT_BY_THE_DEVELOPER]
            assert sorted(p.name for p in self.laptop.iterdir()) == [LEFT_BY_THE_DEVELOPER]
        else:
            assert self.view_after() is None, "the command created /var/run/numaflow"
