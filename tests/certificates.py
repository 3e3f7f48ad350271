"""Test certificates from trustme: a CA, and serving or client certificates it issues, as
PEM files (what `serve --tls-cert/--tls-key/--client-ca` and the API server read)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass
class Issued:
    cert: Path
    key: Path


class CertificateAuthority:
    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.ca = trustme.CA(organization_name=name)
        self.path = directory / f"{name}.crt"
        self.ca.cert_pem.write_to_path(str(self.path))

    def issue(self, common_name: str, *, server: bool) -> Issued:
        """A certificate for `common_name`; a serving one names localhost and 127.0.0.1."""
        leaf = self.ca.issue_cert(
            *(SERVER_NAMES if server else (common_name,)), common_name=common_name
        )
        issued = Issued(
            self.directory / f"{common_name}.crt", self.directory / f"{common_name}.key"
        )
        leaf.cert_chain_pems[0].write_to_path(str(issued.cert))
        leaf.private_key_pem.write_to_path(str(issued.key))
        return issued
