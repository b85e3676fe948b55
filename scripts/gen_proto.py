"""Regenerate the Python stubs of sink_runtime/proto from its .proto files.

Run from anywhere: `python scripts/gen_proto.py [--out DIR]`. The generated files are
committed; tests/unit/test_proto_stubs.py fails when they differ from a fresh generation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ["sink_runtime/proto/sink.proto", "sink_runtime/proto/batch.proto"]


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(ROOT / p) for p in PROTOS],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="root of the output tree")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
