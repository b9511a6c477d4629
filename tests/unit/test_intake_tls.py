"""The intake serves TLS by default: configured files, or a certificate from the local CA."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import ValidationError

from connectors.intake import IntakeSettings
from connectors.intake.cli import tls_files
from infra.settings import BrokerSettings


def test_without_configuration_a_certificate_from_the_local_ca_names_the_host(
    tmp_path: Path,
) -> None:
    settings = IntakeSettings(state_dir=tmp_path / "intake", host="127.0.0.1")
    broker = BrokerSettings(state_dir=tmp_path / "kafka")
    certfile, keyfile = tls_files(settings, broker)
    assert certfile is not None and keyfile is None
    pem = Path(certfile)
    assert stat.S_IMODE(pem.stat().st_mode) & 0o077 == 0  # the key is in it
    leaf, _ca = x509.load_pem_x509_certificates(pem.read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    trusted = x509.load_pem_x509_certificate((broker.security_dir / "ca.pem").read_bytes())
    leaf.verify_directly_issued_by(trusted)
    assert tls_files(settings, broker) == (certfile, None)  # reused while valid


def test_configured_files_are_served_as_given(tmp_path: Path) -> None:
    settings = IntakeSettings(
        state_dir=tmp_path, tls_certfile=tmp_path / "chain.pem", tls_keyfile=tmp_path / "key.pem"
    )
    assert tls_files(settings) == (str(tmp_path / "chain.pem"), str(tmp_path / "key.pem"))
    with pytest.raises(ValidationError, match="tls_keyfile needs tls_certfile"):
        IntakeSettings(tls_keyfile=tmp_path / "key.pem")


def test_plaintext_only_on_loopback(tmp_path: Path) -> None:
    local = IntakeSettings(state_dir=tmp_path, plaintext=True, host="127.0.0.1")
    assert tls_files(local) == (None, None)
    for host in ("0.0.0.0", "10.0.0.7", "intake.example.org"):  # noqa: S104 - the point
        with pytest.raises(ValidationError, match="loopback host only"):
            IntakeSettings(plaintext=True, host=host)
