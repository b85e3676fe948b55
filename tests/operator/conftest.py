"""Fixtures of the operator tier: a fresh emulator per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.emulated_apiserver import ApplyingEmulator, serving_emulator


@pytest.fixture
async def emulator() -> AsyncIterator[ApplyingEmulator]:
    async with serving_emulator() as emu:
        yield emu
