"""YAML for people: what `udsink crd` and `udsink render` print.

One dumper for both so the committed CRD and the rendered children look alike: no anchors or
aliases (PyYAML emits them for repeated dicts, and reviewers should not have to chase them),
multi-line strings (the RuntimeConfig JSON) as literal blocks, keys in the order built.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def dump_all(documents: Iterable[Any]) -> str:
    return yaml.dump_all(
        list(documents),
        Dumper=_Dumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
        explicit_start=True,
    )
