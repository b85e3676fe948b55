"""Every version of every UDSink, for the promise that none ever carries a finalizer: a
`kubectl get --watch` the `udsink_watch` fixture runs for a test module."""

from __future__ import annotations

import subprocess
import threading

from udsink_cli.lifeline import tied_to_parent

from tests.e2e.support.control_plane import ControlPlane


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
