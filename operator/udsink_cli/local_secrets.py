"""The UDSink's Kafka Secrets on a laptop: files or environment variables named on the command
line, in place of what a pod mounts.

A UDSink names its Kafka credentials by Secret and key (`{name, key}`); in a pod the operator
mounts each at `/var/run/secrets/udsink/<secret>/<key>` and the data plane reads those files.
`udsink run`, `udsink replay` and `udsink offsets` take the same keys from:

  --secret NAME/KEY=FILE       the key's value is the content of FILE
  --secret NAME/KEY=env:VAR    the key's value is environment variable VAR
  --secrets-dir DIR            every key at DIR/<secret>/<key> (the pod's layout)

and lay them out as in the pod under a private directory (mode 0700: files linked, values from
the environment written with mode 0600), removed when the command ends. The connection is then
built by the data plane's own code (`sink_runtime.dataplane.kafka_settings`) from the same
UDSink fields, so a local client and a pod connect identically. A key the UDSink needs and the
command line does not give is an error naming the UDSink field, the Secret and the key.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

from sink_runtime.config import (
    KafkaConnection,
    KafkaSinkConfig,
    RuntimeConfig,
    constants,
    revised,
)
from sink_runtime.dataplane.kafka_settings import sasl_field, tls_field

ENV_PREFIX = "env:"
_REF = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/([-._a-zA-Z0-9]+)$")
# The tail of a secret's path, in a pod and here: <root>/secrets/udsink/<secret>/<key>.
_LAYOUT = ("secrets", "udsink")

HELP = """\
Kafka Secrets (a UDSink's tls/sasl Secret keys; the pod mounts them, here you name them):
  --secret NAME/KEY=FILE      the value of Secret NAME's key KEY is FILE's content
  --secret NAME/KEY=env:VAR   ... is environment variable VAR (kept out of the process list)
  --secrets-dir DIR           every key at DIR/NAME/KEY, e.g. from
                              kubectl get secret NAME -o json | jq -r '.data.KEY|@base64d'
  Nothing is copied: files are linked from a private directory (0700) and values from the
  environment written there (0600), removed when the command ends.
"""

_C = TypeVar("_C", bound=KafkaConnection)


class LocalSecretError(ValueError):
    """A Secret key the UDSink needs is not given, or not readable; names field, Secret, key."""


def add_secret_args(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--secret",
        dest="secrets",
        action="append",
        default=[],
        metavar="NAME/KEY=FILE|env:VAR",
        help="where a Secret key the UDSink names comes from here (repeatable; see below)",
    )
    p.add_argument(
        "--secrets-dir",
        dest="secrets_dirs",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="Secret keys as files DIR/NAME/KEY (repeatable)",
    )


@dataclass(frozen=True)
class LocalSecrets:
    """Where each Secret key comes from on this machine."""

    given: Mapping[tuple[str, str], str] = field(default_factory=dict)  # -> path or env:VAR
    dirs: Sequence[Path] = ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LocalSecrets:
        given: dict[tuple[str, str], str] = {}
        for text in args.secrets:
            ref, sep, source = text.partition("=")
            match = _REF.match(ref.strip())
            if not sep or match is None or not source.strip():
                raise LocalSecretError(
                    f"--secret {text!r} is not NAME/KEY=FILE or NAME/KEY=env:VAR "
                    "(NAME a Secret's name, KEY one of its keys)"
                )
            given[(match.group(1), match.group(3))] = source.strip()
        for d in args.secrets_dirs:
            if not d.is_dir():
                raise LocalSecretError(f"--secrets-dir {d} is not a directory")
        return cls(given=given, dirs=list(args.secrets_dirs))

    # --- laying the keys out ---

    def localize(self, conn: _C, where: str, root: Path) -> _C:
        """`conn` with each secret file moved under `root` (<root>/secrets/udsink/<s>/<k>)."""
        tls, sasl = conn.tls, conn.sasl
        update: dict[str, object] = {}
        if tls is not None:
            update["tls"] = revised(
                tls,
                **{
                    attr: self._place(getattr(tls, attr), tls_field(tls, where, attr), root)
                    for attr in ("ca_file", "cert_file", "key_file")
                    if getattr(tls, attr) is not None
                },
            )
        if sasl is not None:
            update["sasl"] = revised(
                sasl,
                **{
                    attr: self._place(getattr(sasl, attr), sasl_field(sasl, where, attr), root)
                    for attr in (
                        "username_file",
                        "password_file",
                        "client_id_file",
                        "client_secret_file",
                    )
                    if getattr(sasl, attr) is not None
                },
            )
        return revised(conn, **update) if update else conn

    def localize_config(self, config: RuntimeConfig, root: Path) -> RuntimeConfig:
        """Every Kafka connection of `config` (source and sinks), localized."""
        update: dict[str, object] = {}
        if isinstance(config.source, KafkaConnection):
            update["source"] = self.localize(config.source, "source", root)
        for attr, where in (
            ("sink", "sink"),
            ("fallback", "fallback"),
            ("on_success", "onSuccess"),
            ("serve", "serve"),
        ):
            sink = getattr(config, attr)
            if isinstance(sink, KafkaSinkConfig):
                update[attr] = self.localize(sink, where, root)
        return revised(config, **update)

    def _place(self, path: str, field_text: str, root: Path) -> str:
        ref = PurePosixPath(path)
        secret, key = ref.parent.name, ref.name
        if ref.parent.parent != PurePosixPath(constants.SECRETS_DIR):
            return path  # not a mounted Secret (a RuntimeConfig written by hand): used as is
        target = root.joinpath(*_LAYOUT, secret, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        source = self.given.get((secret, key))
        if source is None:
            found = [d / secret / key for d in self.dirs if (d / secret / key).is_file()]
            if not found:
                raise LocalSecretError(
                    f"{field_text}: not given here; pass --secret {secret}/{key}=FILE "
                    f"(or ={ENV_PREFIX}VAR), or --secrets-dir DIR holding {secret}/{key}"
                )
            source = str(found[0])
        if source.startswith(ENV_PREFIX):
            var = source[len(ENV_PREFIX) :]
            value = os.environ.get(var)
            if value is None:
                raise LocalSecretError(
                    f"{field_text}: --secret {secret}/{key}={source}: environment variable "
                    f"{var} is not set"
                )
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(value)
            return str(target)
        file = Path(source).expanduser().resolve()
        if not file.is_file() or not os.access(file, os.R_OK):
            raise LocalSecretError(
                f"{field_text}: --secret {secret}/{key}={source}: no readable file {file}"
            )
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(file)
        return str(target)


__all__ = ["HELP", "LocalSecretError", "LocalSecrets", "add_secret_args"]
