"""Per-run TLS material and SASL users for the test broker's secured listeners.

Everything is made fresh for each broker (nothing is checked in, nothing is downloaded): a CA,
a server certificate for the broker's address, a client certificate signed by the same CA
(mTLS), and the failure cases the tests need: a second CA nobody trusts, a server certificate
for another host name and one that has expired. Keys are EC P-256 (fast to make; librdkafka
and the JVM both take them). The broker reads PEM files directly (`ssl.keystore.type=PEM`),
so no keytool or JKS is involved.

SASL users: one SCRAM user per mechanism and one PLAIN user, with random passwords. The test
that checks secrets never leak scans output for these passwords, so they are long and unique.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates are valid from a little before now (clock skew between processes is nil here,
# but the JVM and OpenSSL both compare against their own clock) for one day.
_BACKDATE = dt.timedelta(minutes=5)
_LIFETIME = dt.timedelta(days=1)
WRONG_HOST = "not-this-broker.invalid"


@dataclass(frozen=True)
class SaslUser:
    mechanism: str  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    username: str
    password: str


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the PEM files, all in one private directory."""

    dir: Path
    ca: Path  # the CA certificate clients trust
    server: Path  # the broker's key + chain (PEM keystore), for its address
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing the broker presents
    wrong_host_server: Path  # key + chain for WRONG_HOST only
    expired_server: Path  # key + chain, expired yesterday

    def secret_values(self) -> list[str]:
        """Text that must never show up in output: the client's private key, and each line
        of its body alone (a key printed in parts)."""
        pem = self.client_key.read_text().strip()
        return [pem, *(line for line in pem.splitlines() if not line.startswith("-----"))]


@dataclass(frozen=True)
class Users:
    scram_256: SaslUser
    scram_512: SaslUser
    plain: SaslUser

    def all(self) -> list[SaslUser]:
        return [self.scram_256, self.scram_512, self.plain]


def make_users() -> Users:
    def user(mechanism: str, name: str) -> SaslUser:
        return SaslUser(mechanism, f"{name}-{secrets.token_hex(3)}", secrets.token_urlsafe(24))

    return Users(
        scram_256=user("SCRAM-SHA-256", "scram256"),
        scram_512=user("SCRAM-SHA-512", "scram512"),
        plain=user("PLAIN", "plain"),
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str,
    *,
    hosts: list[str],
    server: bool,
    valid_until: dt.datetime | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    until = valid_until or now + _LIFETIME
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now - _BACKDATE, until - _LIFETIME))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8: the only unencrypted private key format Kafka's PEM keystore reads.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def make_tls(directory: Path, host: str) -> TlsMaterial:
    """A CA, the broker's certificates for `host` (and the failure cases), a client cert."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca = _ca("udsink test CA")
    other = _ca("udsink untrusted CA")
    hosts = [host] if host != "127.0.0.1" else [host, "localhost"]

    def keystore(name: str, leaf: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> Path:
        return _write(directory / name, _pem_key(leaf[1]) + _pem_cert(leaf[0]) + _pem_cert(ca[0]))

    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    client = _leaf(ca, "udsink-test-client", hosts=[], server=False)
    return TlsMaterial(
        dir=directory,
        ca=_write(directory / "ca.crt", _pem_cert(ca[0])),
        server=keystore("server.pem", _leaf(ca, host, hosts=hosts, server=True)),
        client_cert=_write(directory / "client.crt", _pem_cert(client[0])),
        client_key=_write(directory / "client.key", _pem_key(client[1])),
        other_ca=_write(directory / "other-ca.crt", _pem_cert(other[0])),
        wrong_host_server=keystore(
            "wrong-host.pem", _leaf(ca, WRONG_HOST, hosts=[WRONG_HOST], server=True)
        ),
        expired_server=keystore(
            "expired.pem", _leaf(ca, host, hosts=hosts, server=True, valid_until=yesterday)
        ),
    )


@dataclass(frozen=True)
class SecuredListeners:
    """What a client outside the test process needs to use the secured listeners (the bench
    with `--broker-security FILE`): their addresses, the TLS files and the users."""

    addresses: dict[str, str]
    tls: TlsMaterial
    users: Users

    def write(self, path: Path) -> Path:
        doc = {"addresses": self.addresses, "tls": asdict(self.tls), "users": asdict(self.users)}
        path.write_text(json.dumps(doc, default=str))
        path.chmod(0o600)
        return path

    @classmethod
    def read(cls, path: Path) -> SecuredListeners:
        doc = json.loads(path.read_text())
        tls = TlsMaterial(**{f.name: Path(doc["tls"][f.name]) for f in fields(TlsMaterial)})
        users = Users(**{k: SaslUser(**v) for k, v in doc["users"].items()})
        return cls(addresses=doc["addresses"], tls=tls, users=users)
