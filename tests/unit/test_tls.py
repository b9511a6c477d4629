"""The local CA and node certificates: owner-only files, reused while valid, renewed when not."""

from __future__ import annotations

import datetime
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from infra import tls
from infra.principals import CredentialStore, PrincipalError, check_name
from infra.tls import CertificateAuthority, TlsError, ensure_node_tls, write_secret

HOSTS = ("127.0.0.1", "localhost")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_secrets_are_owner_only_even_when_the_file_existed_wider(tmp_path: Path) -> None:
    target = tmp_path / "security" / "secret.pem"
    target.parent.mkdir()
    target.write_bytes(b"old")
    target.chmod(0o644)
    tmp_path.joinpath("security").chmod(0o755)
    write_secret(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    assert _mode(target.parent) == 0o700


def test_node_files_are_owner_only_and_python_ssl_accepts_the_chain(tmp_path: Path) -> None:
    files = ensure_node_tls(tmp_path / "security", tmp_path / "node-1", "kafka-node-1", HOSTS)
    for path in (files.ca, files.keystore, tmp_path / "security" / "ca-key.pem"):
        assert _mode(path) == 0o600
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(files.ca))
    context.load_cert_chain(str(files.keystore))
    leaf = _leaf(files.keystore)
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca.read_bytes()))
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert leaf.subject.rfc4514_string().startswith("CN=kafka-node-1,")


def test_a_second_call_reuses_the_ca_and_the_node_certificate(tmp_path: Path) -> None:
    first = ensure_node_tls(tmp_path / "s", tmp_path / "n", "kafka-node-1", HOSTS)
    ca, node = first.ca.read_bytes(), first.keystore.read_bytes()
    second = ensure_node_tls(tmp_path / "s", tmp_path / "n", "kafka-node-1", HOSTS)
    assert second.ca.read_bytes() == ca
    assert second.keystore.read_bytes() == node


def test_a_new_host_or_a_new_ca_issues_the_node_certificate_anew(tmp_path: Path) -> None:
    files = ensure_node_tls(tmp_path / "s", tmp_path / "n", "kafka-node-1", HOSTS)
    node = files.keystore.read_bytes()
    ensure_node_tls(tmp_path / "s", tmp_path / "n", "kafka-node-1", (*HOSTS, "broker.local"))
    assert files.keystore.read_bytes() != node
    node = files.keystore.read_bytes()
    (tmp_path / "s" / "ca.pem").unlink()
    renewed = ensure_node_tls(tmp_path / "s", tmp_path / "n", "kafka-node-1", HOSTS)
    assert renewed.keystore.read_bytes() != node
    _leaf(renewed.keystore).verify_directly_issued_by(
        x509.load_pem_x509_certificate(renewed.ca.read_bytes())
    )


def test_a_ca_near_its_expiry_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = CertificateAuthority.load_or_create(tmp_path)
    later = old.certificate.not_valid_after_utc - datetime.timedelta(days=1)
    monkeypatch.setattr(tls, "_now", lambda: later)
    renewed = CertificateAuthority.load_or_create(tmp_path)
    assert renewed.certificate.serial_number != old.certificate.serial_number


def test_an_unreadable_ca_is_a_clear_error(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path)
    (tmp_path / "ca-key.pem").write_bytes(b"not a key")
    with pytest.raises(TlsError, match="cannot be read"):
        CertificateAuthority.load_or_create(tmp_path)


def test_the_ca_key_is_unencrypted_pkcs8_for_kafka(tmp_path: Path) -> None:
    CertificateAuthority.load_or_create(tmp_path)
    pem = (tmp_path / "ca-key.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    serialization.load_pem_private_key(pem, password=None)


def test_credentials_are_generated_once_kept_and_owner_only(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "security")
    first = store.ensure(["router", "intake"])
    assert set(first) == {"router", "intake"}
    assert len(set(first.values())) == 2
    assert all(len(password) >= 40 for password in first.values())
    again = store.ensure(["router", "agency-a"])
    assert again["router"] == first["router"]
    assert _mode(store.path) == 0o600
    properties, env = store.write_client_files("router", "127.0.0.1:9092", tmp_path / "ca.pem")
    assert f"sasl.password={first['router']}\n" in properties.read_text()
    assert "SAFEPASSAGE_SECURITY_PROTOCOL=SASL_SSL\n" in env.read_text()
    assert _mode(properties) == _mode(env) == 0o600


@pytest.mark.parametrize("name", ["", "Router", "kafka-node-1", "a b", "x" * 64, "-a", "é"])
def test_unusable_principal_names_are_refused(name: str) -> None:
    with pytest.raises(PrincipalError, match="cannot name a principal"):
        check_name(name)


def test_an_unknown_principal_or_a_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    with pytest.raises(PrincipalError, match="no credentials for principal 'router'"):
        store.password("router")
    store.path.write_text("[]")
    with pytest.raises(PrincipalError, match="not a credentials file"):
        store.load()
    store.path.write_text('{"principals": {"a": 1}}')
    with pytest.raises(PrincipalError, match="must map names to passwords"):
        store.load()
