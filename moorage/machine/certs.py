"""TLS and SSH material, made with `cryptography`.

One CA per client store (<storage>/certs), as docker-machine: it signs the client
certificate there and each machine's server certificate, whose SANs are the
addresses the machine is reached at. Keys are ECDSA P-256 (fast to make, accepted
by Go's and Python's TLS); private files are 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from moorage.machine.paths import certs_dir, private_dir, write_private

_VALID = datetime.timedelta(days=1095)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load(path: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(path.replace("ca.pem", "ca-key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _builder(subject: str, issuer: x509.Name | None, public: object) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
            .public_key(public).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID))


def ensure_client_store(regenerate: bool = False) -> str:
    """<storage>/certs with ca.pem, ca-key.pem, cert.pem, key.pem; made once."""
    base = private_dir(certs_dir())
    ca_path = os.path.join(base, "ca.pem")
    if os.path.exists(ca_path) and not regenerate:
        return base
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (_builder("moorage machine CA", None, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    write_private(os.path.join(base, "ca-key.pem"), _key_pem(ca_key))
    write_private(ca_path, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    _leaf(base, "cert.pem", "key.pem", "moorage machine client", [],
          ExtendedKeyUsageOID.CLIENT_AUTH)
    return base


def _leaf(target: str, cert_name: str, key_name: str, subject: str,
          sans: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> None:
    ca, ca_key = _load(os.path.join(certs_dir(), "ca.pem"))
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (_builder(subject, ca.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_private(os.path.join(target, key_name), _key_pem(key))
    write_private(os.path.join(target, cert_name), cert.public_bytes(serialization.Encoding.PEM),
                  0o644)


def machine_certs(machine: str, name: str, addresses: list[str]) -> None:
    """ca.pem, cert.pem and key.pem (the client's, so the folder is a DOCKER_CERT_PATH)
    and server.pem/server-key.pem with the machine's addresses as SANs."""
    import shutil

    store = ensure_client_store()
    for item in ("ca.pem", "cert.pem", "key.pem"):
        shutil.copy(os.path.join(store, item), os.path.join(machine, item))
        os.chmod(os.path.join(machine, item), 0o600 if item == "key.pem" else 0o644)
    sans: list[x509.GeneralName] = [x509.DNSName(name), x509.DNSName("localhost")]
    for address in addresses:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            sans.append(x509.DNSName(address))
    _leaf(machine, "server.pem", "server-key.pem", f"moorage machine {name}", sans,
          ExtendedKeyUsageOID.SERVER_AUTH)


def ssh_keypair(private_path: str) -> str:
    """An ed25519 key in OpenSSH's format at `private_path` (0600), `.pub` beside it;
    returns the public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    write_private(private_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    write_private(private_path + ".pub", (public + "\n").encode(), 0o644)
    return public
