"""A local certificate authority and the certificates of the development broker.

The secured broker listens on TLS, so its clients need a CA to trust and the
broker a certificate for its loopback address; the KRaft controller listener
uses mutual TLS, so each node also presents a certificate whose subject is
its principal. Everything is made with the ``cryptography`` package (no
``keytool``, no ``openssl`` command): PEM files that Kafka reads directly
(``ssl.keystore.type=PEM``) and that Python's ``ssl`` module loads.

The files are secrets: each is written owner-only (0600) in an owner-only
folder (0700), and an existing set is reused until it nears its expiry, so a
restart does not invalidate the CA every client already trusts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.exceptions import InfraError

__all__ = ["CertificateAuthority", "TlsError", "TlsFiles", "ensure_node_tls", "write_secret"]

VALIDITY = datetime.timedelta(days=825)
"""The longest validity common TLS clients accept for a leaf certificate."""
RENEW_BEFORE = datetime.timedelta(days=30)
ORGANISATION = "SafePassage development"


class TlsError(InfraError):
    """The local certificates could not be made or read."""


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, never briefly wider.

    The file is created with mode 0600 (an existing one is narrowed first),
    and its folder is narrowed to 0700.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    if path.exists():
        path.chmod(0o600)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8, unencrypted: the form Kafka's PEM key store reads without a key password.

    The file's owner-only mode protects it instead of a password that would
    have to sit next to it in the broker's configuration anyway.
    """
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _fresh(certificate: x509.Certificate) -> bool:
    return certificate.not_valid_after_utc - _now() > RENEW_BEFORE


@dataclass(frozen=True)
class CertificateAuthority:
    """The local CA: its key signs the node certificates, its certificate is what clients trust."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls) -> CertificateAuthority:
        key = _new_key()
        now = _now()
        name = _name("SafePassage local CA")
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """The CA kept in ``directory`` (``ca.pem``, its key), made anew if absent or expiring."""
        cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
        if cert_path.exists() and key_path.exists():
            try:
                certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            except ValueError as exc:
                raise TlsError(f"the local CA in {directory} cannot be read: {exc}") from exc
            if isinstance(key, ec.EllipticCurvePrivateKey) and _fresh(certificate):
                return cls(key, certificate)
        authority = cls.create()
        write_secret(key_path, _key_pem(authority.key))
        write_secret(cert_path, authority.certificate.public_bytes(serialization.Encoding.PEM))
        return authority

    def issue(
        self, common_name: str, hosts: tuple[str, ...]
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A node's key and certificate: a server for ``hosts``, a client as ``common_name``.

        Both uses in one certificate: each node serves TLS to its clients and
        presents itself to the other nodes' controller listener.
        """
        key = _new_key()
        now = _now()
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + VALIDITY, self.certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        return key, certificate


@dataclass(frozen=True)
class TlsFiles:
    """Where a node's TLS material lies: what its ``server.properties`` names."""

    ca: Path
    """The CA certificate every client and node trusts (``ssl.truststore.location``)."""
    keystore: Path
    """The node's private key followed by its certificate chain (``ssl.keystore.location``)."""


def ensure_node_tls(
    security_dir: Path, node_dir: Path, common_name: str, hosts: tuple[str, ...]
) -> TlsFiles:
    """The node's TLS files, issued by the CA under ``security_dir``; reused while still valid.

    A node certificate is issued anew when it is missing, expiring, not
    signed by the current CA, or does not name every one of ``hosts``.
    """
    authority = CertificateAuthority.load_or_create(security_dir)
    keystore = node_dir / "tls" / "node.pem"
    if keystore.exists() and _keystore_fits(keystore, authority, common_name, hosts):
        return TlsFiles(ca=security_dir / "ca.pem", keystore=keystore)
    key, certificate = authority.issue(common_name, hosts)
    pem = serialization.Encoding.PEM
    chain = certificate.public_bytes(pem) + authority.certificate.public_bytes(pem)
    write_secret(keystore, _key_pem(key) + chain)
    return TlsFiles(ca=security_dir / "ca.pem", keystore=keystore)


def _keystore_fits(
    keystore: Path, authority: CertificateAuthority, common_name: str, hosts: tuple[str, ...]
) -> bool:
    try:
        certificate = x509.load_pem_x509_certificates(keystore.read_bytes())[0]
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, IndexError, x509.ExtensionNotFound):
        return False
    try:
        certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    listed = {str(value) for value in names.get_values_for_type(x509.IPAddress)}
    listed |= set(names.get_values_for_type(x509.DNSName))
    return (
        _fresh(certificate) and certificate.subject == _name(common_name) and set(hosts) <= listed
    )
