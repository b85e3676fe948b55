"""The secured listeners of the test broker as a UDSink and its Secrets see them.

A `Client` is one way to connect (a `MODES` entry, or a deliberately wrong variant for the
failure tests): the UDSink's connection fields (`brokers`, `tls`, `sasl` naming Secret keys),
the files holding each Secret key's value, the `--secret NAME/KEY=FILE` flags a local command
takes, and the RuntimeConfig's TlsFiles/SaslFiles for a data plane run as its container runs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sink_runtime.config import SaslFiles, TlsFiles, constants
from tests.support.kafka_broker import KafkaBroker
from tests.support.kafka_security import SaslUser, SecuredListeners

CA = ("kafka-ca", "ca.crt")
CLIENT_CERT = ("kafka-client", "tls.crt")
CLIENT_KEY = ("kafka-client", "tls.key")
USERNAME = ("kafka-user", "username")
PASSWORD = ("kafka-user", "password")

# name -> (listener, TLS, client certificate, SASL user attribute of Users)
MODES: dict[str, tuple[str, bool, bool, str | None]] = {
    "ssl": ("SSL", True, False, None),
    "mtls": ("MTLS", True, True, None),
    "scram-sha-256": ("SCRAM", True, False, "scram_256"),
    "scram-sha-512": ("SCRAM", True, False, "scram_512"),
    "sasl-plain": ("SASLPLAIN", False, False, "plain"),
}


@dataclass(frozen=True)
class Client:
    address: str
    tls: bool
    client_cert: bool
    user: SaslUser | None
    files: dict[tuple[str, str], Path] = field(default_factory=dict)

    def connection(self) -> dict[str, Any]:
        """The UDSink's connection fields (a Kafka source or sink without its topic)."""
        out: dict[str, Any] = {"brokers": [self.address]}
        if self.tls:
            tls: dict[str, Any] = {"caCertSecret": _ref(CA)}
            if self.client_cert:
                tls |= {"certSecret": _ref(CLIENT_CERT), "keySecret": _ref(CLIENT_KEY)}
            out["tls"] = tls
        if self.user is not None:
            member = constants.SASL_MEMBERS[self.user.mechanism]
            out["sasl"] = {
                "mechanism": self.user.mechanism,
                member: {"userSecret": _ref(USERNAME), "passwordSecret": _ref(PASSWORD)},
            }
        return out

    def refs(self) -> list[tuple[str, str]]:
        refs = [CA] if self.tls else []
        if self.client_cert:
            refs += [CLIENT_CERT, CLIENT_KEY]
        if self.user is not None:
            refs += [USERNAME, PASSWORD]
        return refs

    def secret_args(self) -> list[str]:
        """`--secret NAME/KEY=FILE` for every Secret key the connection names."""
        out: list[str] = []
        for name, key in self.refs():
            out += ["--secret", f"{name}/{key}={self.files[(name, key)]}"]
        return out

    def runtime(self, root: Path) -> dict[str, Any]:
        """`tls`/`sasl` of a RuntimeConfig connection, the keys laid out under `root` as the
        operator mounts them (<root>/secrets/udsink/<secret>/<key>)."""

        def mounted(ref: tuple[str, str]) -> str:
            path = root / "secrets" / "udsink" / ref[0] / ref[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.files[ref], path)
            return str(path)

        out: dict[str, Any] = {}
        if self.tls:
            out["tls"] = TlsFiles(
                ca_file=mounted(CA),
                cert_file=mounted(CLIENT_CERT) if self.client_cert else None,
                key_file=mounted(CLIENT_KEY) if self.client_cert else None,
            )
        if self.user is not None:
            out["sasl"] = SaslFiles(
                mechanism=self.user.mechanism,  # type: ignore[arg-type]
                username_file=mounted(USERNAME),
                password_file=mounted(PASSWORD),
            )
        return out

    def with_secret(self, ref: tuple[str, str], text: str, directory: Path) -> Client:
        """This client with another value for Secret key `ref` (a wrong password, user...)."""
        path = directory / f"other-{ref[0]}-{ref[1]}"
        path.write_text(text)
        return replace(self, files={**self.files, ref: path})

    def at(self, address: str) -> Client:
        return replace(self, address=address)

    def with_ca(self, ca: Path) -> Client:
        return replace(self, files={**self.files, CA: ca})


def _ref(ref: tuple[str, str]) -> dict[str, str]:
    return {"name": ref[0], "key": ref[1]}


def client(broker: KafkaBroker | SecuredListeners, mode: str, directory: Path) -> Client:
    """The client of `mode`, its Secret keys' values as files under `directory`."""
    listener, tls, client_cert, user_attr = MODES[mode]
    secured = broker.security() if isinstance(broker, KafkaBroker) else broker
    user: SaslUser | None = getattr(secured.users, user_attr) if user_attr else None
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        CA: secured.tls.ca,
        CLIENT_CERT: secured.tls.client_cert,
        CLIENT_KEY: secured.tls.client_key,
    }
    if user is not None:
        for ref, text in ((USERNAME, user.username), (PASSWORD, user.password)):
            path = directory / f"{mode}-{ref[1]}"
            path.write_text(text + "\n")  # as `kubectl create secret --from-file` often has it
            files[ref] = path
    return Client(secured.addresses[listener], tls, client_cert, user, files)


def secret_values(broker: KafkaBroker) -> list[str]:
    """What must never appear in any output: every user name and password (Secret values
    all), and the client's private key."""
    assert broker.tls is not None and broker.users is not None
    users = broker.users.all()
    return [u.password for u in users] + [u.username for u in users] + broker.tls.secret_values()
