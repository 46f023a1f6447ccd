"""A throwaway certificate authority and a Packhouse server serving HTTPS with its
certificate, for the tests that need TLS (uv does trusted publishing over HTTPS only)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import ADMIN_PASSWORD, VENV_BIN, RunningServer, free_port


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA certificate clients trust (SSL_CERT_FILE, pip --cert)
    cert: Path  # the server's certificate, for 127.0.0.1 and localhost
    key: Path  # its private key

    def context(self) -> ssl.SSLContext:
        """A client context trusting only the test CA (for httpx's `verify`)."""
        return ssl.create_default_context(cafile=str(self.ca))


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(directory: Path) -> Certificates:
    """A CA made now (valid for a day) and a server certificate it signs for 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Packhouse test CA"))
        .issuer_name(_name("Packhouse test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    made = Certificates(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    made.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    made.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return made


def start_tls_server(
    data: Path,
    certs: Certificates,
    extra_env: dict[str, str] | None = None,
    server: str = "granian",
) -> RunningServer:
    """`packhouse serve --tls-cert --tls-key` on 127.0.0.1; answers once /healthz does over
    HTTPS verified against the test CA."""
    port = free_port()
    env = {
        **os.environ,
        "PACKHOUSE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "PACKHOUSE_DATA": str(data),
        **(extra_env or {}),
    }
    env.pop("PACKHOUSE_CONFIG", None)
    log_path = data.parent / f"{data.name}-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "packhouse"),
                "serve",
                "--port",
                str(port),
                "--data",
                str(data),
                "--server",
                server,
                "--tls-cert",
                str(certs.cert),
                "--tls-key",
                str(certs.key),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"https://127.0.0.1:{port}"
    trust = certs.context()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1, verify=trust).status_code == 200:
                return RunningServer(url, data, process, log_path, env=env)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the server did not start in 90 s:\n{log_path.read_text()}")
