"""The control plane's certificates and service-account keys (cryptography, else openssl)."""

from __future__ import annotations

import datetime as _dt
import importlib.util
import ipaddress
import re
import subprocess
from pathlib import Path
from typing import Any


# --------------------------------------------------------------------------- certificates
def generate_pki(d: Path) -> None:
    """ca.{crt,key}, apiserver.{crt,key}, scheduler.{crt,key}, sa.{key,pub} in d (ECDSA P-256)."""
    d.mkdir(parents=True, exist_ok=True)
    sans_api = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "127.0.0.1",
        "10.96.0.1",
    ]
    sans_sched = ["localhost", "127.0.0.1"]
    if importlib.util.find_spec("cryptography") is not None:
        _gen_pki_cryptography(d, sans_api, sans_sched)
    else:
        _gen_pki_openssl(d, sans_api, sans_sched)
    for key in d.glob("*.key"):
        key.chmod(0o600)


def _gen_pki_cryptography(d: Path, sans_api: list[str], sans_sched: list[str]) -> None:
    # Optional dependency, imported dynamically so type checkers need no stubs for it.
    imp = importlib.import_module
    x509 = imp("cryptography.x509")
    hashes = imp("cryptography.hazmat.primitives.hashes")
    serialization = imp("cryptography.hazmat.primitives.serialization")
    ec = imp("cryptography.hazmat.primitives.asymmetric.ec")
    oid = imp("cryptography.x509.oid")

    def key() -> Any:
        return ec.generate_private_key(ec.SECP256R1())

    def write_key(k: Any, name: str) -> None:
        (d / name).write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )

    now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, "gpuclass-localcluster-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_key(ca_key, "ca.key")
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(name: str, cn: str, sans: list[str]) -> None:
        k = key()
        alt: list[Any] = []
        for s in sans:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                alt.append(x509.DNSName(s))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + _dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_key(k, f"{name}.key")
        (d / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    leaf("apiserver", "kube-apiserver", sans_api)
    leaf("scheduler", "kube-scheduler", sans_sched)
    sa = key()
    write_key(sa, "sa.key")
    (d / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _gen_pki_openssl(d: Path, sans_api: list[str], sans_sched: list[str]) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")
    run(
        "req",
        "-x509",
        *ec,
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "365",
        "-subj",
        "/CN=gpuclass-localcluster-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )

    def leaf(name: str, cn: str, sans: list[str]) -> None:
        alt = ",".join(("IP:" if re.fullmatch(r"[\d.]+", s) else "DNS:") + s for s in sans)
        (d / f"{name}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            f"subjectAltName={alt}\n"
            "authorityKeyIdentifier=keyid\n"
        )
        run(
            "req",
            *ec,
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={cn}",
        )
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            f"{name}.ext",
        )

    leaf("apiserver", "kube-apiserver", sans_api)
    leaf("scheduler", "kube-scheduler", sans_sched)
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "sa.key")
    run("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub")
