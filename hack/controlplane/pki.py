"""The control plane's certificates (trustme) and service-account key pair."""

from __future__ import annotations

from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# What clients call the API server by: loopback, and the in-cluster Service's names and IP.
APISERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "127.0.0.1",
    "10.96.0.1",
)
SCHEDULER_NAMES = ("localhost", "127.0.0.1")


def generate_pki(d: Path) -> None:
    """ca.{crt,key}, apiserver.{crt,key}, scheduler.{crt,key} (serving) and sa.{key,pub}."""
    d.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="gpuclass-localcluster")
    ca.cert_pem.write_to_path(str(d / "ca.crt"))
    ca.private_key_pem.write_to_path(str(d / "ca.key"))
    for name, common_name, names in (
        ("apiserver", "kube-apiserver", APISERVER_NAMES),
        ("scheduler", "kube-scheduler", SCHEDULER_NAMES),
    ):
        leaf = ca.issue_cert(*names, common_name=common_name)
        leaf.cert_chain_pems[0].write_to_path(str(d / f"{name}.crt"))
        leaf.private_key_pem.write_to_path(str(d / f"{name}.key"))
    # Service-account tokens are signed with a key pair, not a certificate.
    signing = ec.generate_private_key(ec.SECP256R1())
    (d / "sa.key").write_bytes(
        signing.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (d / "sa.pub").write_bytes(
        signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for key in d.glob("*.key"):
        key.chmod(0o600)
