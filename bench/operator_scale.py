"""The operator at scale: N UDSinks created at once against the Kubernetes API emulator.

The emulator (kmock, with the API-server behaviours of tests/support/emulated_apiserver.py) runs
in this process; the operator runs as the real `udsink operator` command in its own process,
logged in with a kubeconfig, as in tests/operator/test_operator_command.py. For each N (`--counts`):

1. start the operator, create N UDSinks (generator source, one user-defined sink) as fast as
   the emulator takes them, and time until every one has its Deployment, ConfigMap and
   Service and a `status.phase` ("reconciled s", from the first create);
2. wait until the operator issues no request for `--quiet` seconds, and count the writes it
   issued (POST/PUT/PATCH/DELETE, our own creates excluded) per UDSink;
3. stop the operator, start a fresh one over the same objects (a resync: it lists and
   reconciles everything again), wait for quiet again, and count its writes;
4. report the operator process's peak resident memory (VmHWM) and CPU time, for both runs.

Plain kmock records every request and routes each new one by filtering all recorded ones, so
its own cost grows with the square of the request count and dominates the measurement (100
UDSinks took ~55 s with the operator process idle almost all the time; 1,000 never finished).
The bench therefore serves the same emulator without the record (`UnrecordedEmulator` in
tests/support/emulated_apiserver.py): each request is routed by kmock's own reactions and criteria,
but judged alone, and counted as it arrives.

    python bench/operator_scale.py --counts 100,1000

Prints the machine, then a markdown table; `--json FILE` also writes the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import kmock  # noqa: E402

from tests.support.emulated_apiserver import (  # noqa: E402
    NAMESPACE,
    UDSINK_PATH,
    UDSINKS,
    ApplyingEmulator,
    UnrecordedEmulator,
    create,
    operator_command,
    serving_emulator,
    udsink_object,
)
from tests.support.kubeconfig import write_kubeconfig  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

CHILDREN = ("apps/v1/deployments", "v1/configmaps", "v1/services")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.25


@dataclass
class Result:
    udsinks: int
    reconciled_s: float  # first create -> every UDSink has its children and a status phase
    writes: int  # writes the operator issued for the initial reconcile
    resync_writes: int  # writes a restarted operator issued over the same objects
    peak_rss_mib: float  # the first operator process's peak resident memory
    resync_peak_rss_mib: float
    cpu_s: float  # the first operator process's CPU (user + system)
    resync_cpu_s: float

    @property
    def writes_per_udsink(self) -> float:
        return self.writes / self.udsinks


def _names(emu: ApplyingEmulator, resource: str) -> set[str]:
    wanted = kmock.resource(resource)
    return {
        name
        for (res, namespace, name), obj in list(emu.objects.items())
        if res == wanted and namespace == NAMESPACE and not obj.deleted
    }


def _with_status(emu: ApplyingEmulator) -> set[str]:
    wanted = kmock.resource(UDSINKS)
    done: set[str] = set()
    for (res, _namespace, name), obj in list(emu.objects.items()):
        if res == wanted and not obj.deleted and (obj.raw.get("status") or {}).get("phase"):
            done.add(name)
    return done


def reconciled(emu: ApplyingEmulator, names: Sequence[str]) -> bool:
    """Every UDSink has its three children and a status phase (cheap: no copies)."""
    if not set(names) <= _with_status(emu):
        return False
    deployments, config_maps, services = (_names(emu, r) for r in CHILDREN)
    return all(
        n in deployments and f"{n}-config" in config_maps and f"{n}-metrics" in services
        for n in names
    )


async def quiet(emu: UnrecordedEmulator, quiet_s: float, within: float) -> None:
    """Wait until the emulator has seen no request for `quiet_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    seen, calm_since = emu.requests_seen, loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        now = emu.requests_seen
        if now != seen:
            seen, calm_since = now, loop.time()
        elif loop.time() - calm_since >= quiet_s:
            return
    raise RuntimeError(f"the operator never went quiet for {quiet_s}s within {within}s")


def proc_status(pid: int) -> tuple[float, float]:
    """(peak RSS MiB, CPU seconds) of a live process."""
    peak_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kib = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return peak_kib / 1024, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def start_operator(emu: ApplyingEmulator, workdir: Path) -> asyncio.subprocess.Process:
    config = write_kubeconfig(
        workdir / "kubeconfig", str(emu.url).rstrip("/"), "bench", "bench-token"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = (workdir / "operator.log").open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            *operator_command(NAMESPACE, config, liveness_port=free_port()),
            stdout=log,
            stderr=log,
            env=env,
            cwd=ROOT,
        )
    finally:
        log.close()


async def stop_operator(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def measure(count: int, args: argparse.Namespace, workdir: Path) -> Result:
    names = [f"bench-{i:05d}" for i in range(count)]
    async with serving_emulator(UnrecordedEmulator) as served:
        assert isinstance(served, UnrecordedEmulator)
        emu = served
        first = await start_operator(emu, workdir)
        try:
            started = time.monotonic()
            for name in names:
                await create(emu, UDSINK_PATH, udsink_object(name))
            own_writes = count  # the creates above: not the operator's
            deadline = started + args.timeout
            while not reconciled(emu, names):
                if first.returncode is not None:
                    tail = (workdir / "operator.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the operator exited ({first.returncode}):\n{tail}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{count} UDSinks not reconciled within {args.timeout}s")
                await asyncio.sleep(POLL_S)
            took = time.monotonic() - started
            await quiet(emu, args.quiet, args.timeout)
            writes = emu.writes_seen - own_writes
            peak, cpu = proc_status(first.pid)
        finally:
            await stop_operator(first)
        before_resync = emu.writes_seen
        second = await start_operator(emu, workdir)
        try:
            await quiet(emu, args.quiet, args.timeout)
            resync_writes = emu.writes_seen - before_resync
            resync_peak, resync_cpu = proc_status(second.pid)
        finally:
            await stop_operator(second)
    return Result(count, took, writes, resync_writes, peak, resync_peak, cpu, resync_cpu)


def machine() -> list[str]:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- CPU: {os.cpu_count()} x {model}; load average at start: {load}",
        f"- Python {platform.python_version()}, kmock emulator in the bench process",
    ]


def table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| UDSinks | reconciled s | writes | writes/UDSink | resync writes | peak RSS MiB "
        "(resync) | operator CPU s (resync) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.udsinks} | {r.reconciled_s:.1f} | {r.writes} | {r.writes_per_udsink:.1f} "
            f"| {r.resync_writes} | {r.peak_rss_mib:.0f} ({r.resync_peak_rss_mib:.0f}) "
            f"| {r.cpu_s:.1f} ({r.resync_cpu_s:.1f}) |"
        )
    return lines


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--counts", default="100,1000", help="comma-separated UDSink counts")
    parser.add_argument(
        "--quiet", type=float, default=3.0, help="seconds without a request that count as done"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per phase")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(list(argv))
    try:
        args.counts = [int(c) for c in args.counts.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--counts: {args.counts!r} is not a comma-separated list of integers")
    if not args.counts or min(args.counts) < 1:
        parser.error(f"--counts: {args.counts!r}; each count must be >= 1")
    return args


async def main_async(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="udsink-opbench-") as tmp:
        for count in args.counts:
            result = await measure(count, args, Path(tmp))
            print(
                f"  {count} UDSinks: reconciled in {result.reconciled_s:.1f}s, "
                f"{result.writes_per_udsink:.1f} writes each, resync {result.resync_writes} "
                "writes",
                flush=True,
            )
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    for line in machine():
        print(line, flush=True)
    results = asyncio.run(main_async(args))
    print()
    for line in table(results):
        print(line)
    if args.json is not None:
        rows: list[dict[str, Any]] = [
            asdict(r) | {"writes_per_udsink": r.writes_per_udsink} for r in results
        ]
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
