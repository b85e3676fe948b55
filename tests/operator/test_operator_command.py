"""`udsink operator` as a process: kubeconfig login, JSON logs, liveness, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import aiohttp

from tests.support.emulated_apiserver import (
    NAMESPACE,
    UDSINK_PATH,
    ApplyingEmulator,
    create,
    eventually,
    operator_command,
    stored,
    udsink_object,
)
from tests.support.kubeconfig import write_kubeconfig
from tests.support.ports import free_port


async def becomes_healthy(url: str, within: float = 15.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    return False


async def test_operator_command_runs_against_a_cluster(
    emulator: ApplyingEmulator, tmp_path: Path
) -> None:
    config = write_kubeconfig(
        tmp_path / "kubeconfig", str(emulator.url).rstrip("/"), "tester", "s3cr3t-token"
    )
    liveness_port = free_port()
    liveness = f"http://127.0.0.1:{liveness_port}/healthz"
    metrics_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    # The chart's runtime.resources: a CPU request alone (so no CPU limit) for every UDSink.
    resources = '{"requests": {"cpu": "250m"}}'
    process = await asyncio.create_subprocess_exec(
        *operator_command(
            NAMESPACE,
            config,
            liveness_port=liveness_port,
            metrics_port=metrics_port,
            extra=("--runtime-resources", resources),
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        await create(emulator, UDSINK_PATH, udsink_object())
        deployment = await eventually(
            lambda: stored(emulator, "apps/v1/deployments", "orders"), within=30
        )
        assert await becomes_healthy(liveness)
        pending = 'udsink_operator_udsinks{phase="Pending"} 1.0'
        async with aiohttp.ClientSession() as session:
            for _ in range(100):  # the status is written a moment after the Deployment
                async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                    scraped = await response.text()
                if pending in scraped:
                    break
                await asyncio.sleep(0.1)
        assert "\nudsink_operator_reconciles_total " in scraped
        assert pending in scraped
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 0, stderr.decode()[-2000:]
    # The operator-wide defaults replaced the built-in CPU values; memory is still the bound
    # (a generator source and a user-defined sink: 75 MiB + 6 batches of 16 MiB).
    (runtime,) = deployment["spec"]["template"]["spec"]["containers"]
    assert runtime["resources"] == {
        "requests": {"cpu": "250m", "memory": "171Mi"},
        "limits": {"memory": "171Mi"},
    }
    # Both the operator's own calls and kopf's watches authenticated with the kubeconfig.
    from_operator = [r for r in emulator if not r.headers.get("User-Agent", "").startswith("kmock")]
    assert from_operator
    authorizations = {r.headers.get("Authorization") for r in from_operator}
    assert authorizations == {"Bearer s3cr3t-token"}
    lines = [line for line in (stdout + stderr).decode().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    assert any("applied ConfigMap/orders-config" in r.get("message", "") for r in records)
