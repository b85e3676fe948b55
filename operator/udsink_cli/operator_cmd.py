"""`udsink operator`: run the UDSink Kubernetes operator (kopf) against a cluster.

Argument parsing and start-up only: what the operator does is `udsink_operator.handlers`, its
API calls `udsink_operator.cluster`. kopf and the Kubernetes client are imported when the
command runs, so the other commands work without them.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Sequence
from typing import get_args

from pydantic import ValidationError
from udsink_operator import api, constants

from sink_runtime.config.constants import LogFormat, SidecarMode

EXIT_INVALID = 2  # invalid input: a kubeconfig that cannot be used, a port that is taken
RUNTIME_RESOURCES_HELP = (
    "defaults of the runtime container's resources, as JSON in a container's resources shape, "
    'e.g. \'{"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}\'. Each resource named '
    "replaces both of its built-in values (cpu 100m..2; memory: the data plane's memory bound "
    "for the UDSink's settings); a UDSink's spec.runtime.resources replaces these in turn"
)


def runtime_resources_arg(text: str) -> api.Resources:
    """--runtime-resources: a JSON object checked like spec.runtime.resources."""
    try:
        given = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err.msg}): {text!r}") from None
    try:
        return api.Resources.model_validate(given)
    except ValidationError as err:
        issues = api.format_errors(err, api.Resources).issues
        raise argparse.ArgumentTypeError(
            "; ".join(i.removeprefix("(root): ") for i in issues)
        ) from None


def operator_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="udsink operator", description="Run the UDSink Kubernetes operator."
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch this namespace (repeatable; globs like 'team-*' allowed)",
    )
    where.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch the whole cluster"
    )
    election = parser.add_mutually_exclusive_group()
    election.add_argument(
        "--standalone", action="store_true", help="no leader election (a single replica)"
    )
    election.add_argument(
        "--peering",
        default=constants.DEFAULT_PEERING_NAME,
        metavar="NAME",
        help="kopf peering object used for leader election between replicas "
        f"(default {constants.DEFAULT_PEERING_NAME})",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority of this replica: the live replica with the highest one works, "
        "the others wait (default: random, so that replicas never tie)",
    )
    parser.add_argument(
        "--liveness",
        default=constants.DEFAULT_LIVENESS_ENDPOINT,
        metavar="URL",
        help=f"liveness endpoint (default {constants.DEFAULT_LIVENESS_ENDPOINT}; '' = none)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=constants.DEFAULT_OPERATOR_METRICS_PORT,
        metavar="PORT",
        help="serve the operator's Prometheus /metrics on this port "
        f"(default {constants.DEFAULT_OPERATOR_METRICS_PORT}; 0 = none)",
    )
    parser.add_argument(
        "--no-scanning",
        action="store_true",
        help="do not watch Namespaces and CRDs (namespaced installs without cluster-wide RBAC; "
        "--namespace names are then taken as they are)",
    )
    parser.add_argument("--log-format", choices=get_args(LogFormat), default="json")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--runtime-image",
        default=constants.DEFAULT_RUNTIME_IMAGE,
        help="runtime image for UDSinks that do not set spec.runtime.image",
    )
    parser.add_argument(
        "--runtime-resources",
        type=runtime_resources_arg,
        metavar="JSON",
        help=RUNTIME_RESOURCES_HELP,
    )
    parser.add_argument(
        "--sidecars",
        choices=("auto", *get_args(SidecarMode)),
        default="auto",
        help="native sidecars, plain containers, or auto (native from Kubernetes 1.29)",
    )
    parser.add_argument(
        "--recheck-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often failed UDSinks are reconciled again",
    )
    parser.add_argument(
        "--no-secret-check",
        dest="secret_check",
        action="store_false",
        help="do not read referenced Secrets to check that they and their keys exist (no RBAC "
        "on Secrets needed; the kubelet then reports a missing Secret on the UDSink's pods)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context")
    return parser


def peering_priority(given: int | None) -> int:
    """This replica's kopf peering priority. kopf pauses every operator that sees a live peer
    of the same priority, so replicas of one Deployment started with equal priorities would all
    wait forever; a random one per process elects the highest, and when it dies the next
    highest resumes once the dead one's peering record expires."""
    return given if given is not None else secrets.randbelow(2**31 - 1) + 1


def operator_main(argv: Sequence[str]) -> int:
    args = operator_parser().parse_args(list(argv))
    # Imported here: `udsink render` and `udsink crd` work without kopf's runtime set-up.
    import kopf
    from udsink_operator import handlers
    from udsink_operator.cluster import Cluster, KubeconfigError, load_configuration
    from udsink_operator.metrics import OperatorMetrics

    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    try:
        configuration = load_configuration(args.kubeconfig, args.context)
    except KubeconfigError as error:
        print(f"udsink operator: {error}", file=sys.stderr)
        return EXIT_INVALID
    cluster = Cluster(configuration)
    options = handlers.OperatorOptions(
        runtime_image=args.runtime_image,
        runtime_resources=args.runtime_resources,
        sidecars=args.sidecars,
        recheck_interval=args.recheck_interval,
        check_secrets=args.secret_check,
    )
    metrics = OperatorMetrics()
    if args.metrics_port:
        try:
            metrics.serve(args.metrics_port)
        except OSError as error:
            print(
                f"udsink operator: --metrics-port {args.metrics_port}: cannot listen ({error}); "
                "choose a free port, or 0 for no metrics endpoint",
                file=sys.stderr,
            )
            return EXIT_INVALID
    settings = handlers.operator_settings()
    settings.scanning.disabled = args.no_scanning
    try:
        kopf.run(
            registry=handlers.build_registry(cluster, options, metrics),
            settings=settings,
            clusterwide=args.all_namespaces,
            namespaces=args.namespaces or (),
            standalone=args.standalone,
            peering_name=None if args.standalone else args.peering,
            priority=peering_priority(args.priority),
            liveness_endpoint=args.liveness or None,
        )
    finally:
        cluster.close()
    return 0
