"""Children that die with the process that started them, without `preexec_fn`.

The kernel's parent-death signal (prctl PR_SET_PDEATHSIG) kills a child when its parent goes,
so a crashed `udsink run` (or a killed pytest) leaves no sink, broker or data plane behind.
Setting it needs code between fork and exec; `preexec_fn` would do that, but it makes
`subprocess` use fork() instead of vfork(), and fork() runs every library's at-fork handlers
in the child. gRPC's handlers, forking while gRPC threads are busy, abort the child before it
ever reaches exec (`epoll_wait error: Bad file descriptor`, SIGABRT). So the signal is set by a
tiny trampoline instead: the interpreter itself, started by vfork(), sets it, checks the parent
is still the one that started it (else nobody would ever signal it), and execs the command.
The pid Popen returns is the command's pid: exec keeps it.

The signal follows the *thread* that started the child, so it is only set from the main
thread (which lives as long as the process); elsewhere the command runs as given, and the
caller's own stop is its only end.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence

# argv: [python, -I, -S, -c, this, parent pid, command...]. 1 is PR_SET_PDEATHSIG, 9 SIGKILL.
_TRAMPOLINE = """\
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(1, 9)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as err:
    sys.stderr.write(f"cannot run {sys.argv[2]}: {err.strerror}\\n")
    os._exit(127)
"""


def _check_runnable(
    program: str, env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None
) -> None:
    """Raise the OSError Popen would raise for a program that cannot be run, so callers keep
    their "cannot start ..." message instead of a trampoline's exit code."""
    if os.sep in program:
        path = program if cwd is None or os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(path, os.X_OK) or os.path.isdir(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
        return
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    if shutil.which(program, path=search) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def tied_to_parent(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> list[str]:
    """`argv`, wrapped so the kernel SIGKILLs the command when this process dies.

    Pass the result to `subprocess.Popen` (with the same `env` and `cwd`, and no
    `preexec_fn`). Raises FileNotFoundError or PermissionError, as Popen would, when the
    program cannot be run. Unwrapped off Linux and off the main thread.
    """
    command = list(argv)
    if not command:
        raise ValueError("an empty command cannot be run")
    _check_runnable(command[0], env, cwd)
    if not sys.platform.startswith("linux"):
        return command
    if threading.current_thread() is not threading.main_thread():
        return command
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), *command]
