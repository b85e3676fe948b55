"""`udsink render`: the children the operator builds from each UDSink in a file, as YAML.

No cluster needed, so a reviewer or a GitOps pipeline (as a pre-check) sees exactly the
ConfigMap, Service and Deployment the operator would apply, or the same validation errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO, get_args

from udsink_operator import api, build, constants, yamlout

from sink_runtime.config.constants import SidecarMode
from udsink_cli.manifests import InputError, is_udsink, kinds_found, read_documents
from udsink_cli.operator_cmd import RUNTIME_RESOURCES_HELP, runtime_resources_arg

EXIT_INVALID = 2  # invalid input: the file, its YAML, or a UDSink in it


def render_documents(docs: Sequence[Any], options: build.BuildOptions) -> list[Any]:
    """The children of every UDSink in `docs`; raises SpecError for the first invalid one."""
    rendered: list[Any] = []
    for doc in docs:
        if not is_udsink(doc):
            continue
        children = build.build(api.parse_udsink(doc), options)
        rendered += children.manifests()
    return rendered


def render_main(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdout, stderr = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="udsink render",
        description=(
            "Print the ConfigMap, Service and Deployment that the operator builds from each "
            "UDSink in a file, without a cluster."
        ),
    )
    parser.add_argument("-f", "--filename", required=True, help="YAML file ('-' = stdin)")
    parser.add_argument(
        "--runtime-image", default=constants.DEFAULT_RUNTIME_IMAGE, help="default runtime image"
    )
    parser.add_argument(
        "--runtime-resources",
        type=runtime_resources_arg,
        metavar="JSON",
        help=RUNTIME_RESOURCES_HELP + " (the operator's --runtime-resources)",
    )
    parser.add_argument(
        "--sidecars",
        choices=get_args(SidecarMode),
        default="native",
        help="native sidecars (Kubernetes >= 1.29) or plain containers",
    )
    args = parser.parse_args(list(argv))
    options = build.BuildOptions(
        runtime_image=args.runtime_image,
        sidecars=args.sidecars,
        runtime_resources=args.runtime_resources,
    )
    try:
        docs = read_documents(args.filename)
    except InputError as error:
        print(f"udsink render: {error}", file=stderr)
        return EXIT_INVALID
    udsinks = [d for d in docs if is_udsink(d)]
    if not udsinks:
        print(
            f"udsink render: {args.filename}: no object of kind {constants.KIND} "
            f"({kinds_found(docs)})",
            file=stderr,
        )
        return EXIT_INVALID
    rendered: list[Any] = []
    failed = False
    for doc in udsinks:
        name = (doc.get("metadata") or {}).get("name", "?")
        try:
            rendered += render_documents([doc], options)
        except api.SpecError as error:
            failed = True
            print(f"udsink render: {args.filename}: UDSink {name!r} is invalid:", file=stderr)
            for issue in error.issues:
                print(f"  - {issue}", file=stderr)
    if failed:
        return EXIT_INVALID
    stdout.write(yamlout.dump_all(rendered))
    return 0
