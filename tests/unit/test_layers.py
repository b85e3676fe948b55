"""The import contracts (.importlinter) name every module they govern: a layers contract lists
every module of its container, and the SDK's "never imports the data plane" contract every
module of sink_runtime but the data plane, so a new module cannot slip past them unlisted."""

from __future__ import annotations

import configparser
import importlib
import pkgutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def contracts() -> dict[str, configparser.SectionProxy]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return {name: parser[name] for name in parser.sections() if name.startswith("importlinter:")}


def children(package: str) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__)}


def listed(value: str) -> list[str]:
    return [m.strip() for line in value.strip().splitlines() for m in line.split("|")]


def test_every_layers_contract_names_every_module_of_its_container() -> None:
    checked = 0
    for name, contract in contracts().items():
        if contract.get("type") != "layers":
            continue
        for container in contract["containers"].split():
            layers = set(listed(contract["layers"]))
            # The SDK's layers leave out the data plane and the generated stubs, each governed
            # by a contract of its own (the data plane's layers; the pure-modules and grpc ones).
            exempt = {"dataplane", "proto"} if container == "sink_runtime" else set()
            # A C extension imports no module of ours (and is absent from a build without it).
            exempt |= {m for m in children(container) if m == "_fastrecords"}
            assert children(container) - exempt == layers, f"{name}: {container}"
            checked += 1
    assert checked >= 6


def test_the_sdk_contract_names_every_module_but_the_data_plane() -> None:
    contract = contracts()["importlinter:contract:sdk-below-dataplane"]
    sources = set(contract["source_modules"].split())
    assert sources == {f"sink_runtime.{m}" for m in children("sink_runtime") - {"dataplane"}}
