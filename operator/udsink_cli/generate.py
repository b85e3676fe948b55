"""`udsink crd` and `udsink docs-reference`: print what the API models generate.

The CRD (for the API server) and the field reference (for a person) both come from the models
in `udsink_operator.api`; these commands only print them, so `crds/udsink.yaml` and
`docs/reference.md` are regenerated the same way by a contributor and checked by the tests.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from udsink_operator import crd, reference


def crd_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="udsink crd", description="Print the UDSink CustomResourceDefinition (YAML)."
    )
    parser.parse_args(list(argv))
    sys.stdout.write(crd.render_yaml())
    return 0


def docs_reference_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="udsink docs-reference",
        description="Print the UDSink field reference (markdown). Regenerate: "
        + reference.REGENERATE,
    )
    parser.parse_args(list(argv))
    sys.stdout.write(reference.render())
    return 0
