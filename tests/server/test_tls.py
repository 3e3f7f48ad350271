"""TLS for the Service variant: a serving certificate, and optionally only clients whose
certificate our CA signed (the scheduler's extender tlsConfig certFile/keyFile)."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.certificates import CertificateAuthority, Issued
from tests.server.serving import get, serving
from tests.server.test_runtime import metric
from tests.state.fake_apiserver import FakeApiServer


@dataclass
class Pki:
    ca: CertificateAuthority
    server: Issued
    scheduler: Issued
    stranger: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = CertificateAuthority(tmp_path, "gpuclass-ca")
    other = CertificateAuthority(tmp_path, "other-ca")
    return Pki(
        ca=ca,
        server=ca.issue("gpuclass-extender", server=True),
        scheduler=ca.issue("kube-scheduler", server=False),
        stranger=other.issue("stranger", server=False),
    )


def client_context(pki: Pki, client: Issued | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.path))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


async def test_serve_answers_over_tls_with_its_serving_certificate(
    pki: Pki, tmp_path: Path
) -> None:
    async with serving(
        FakeApiServer(), tmp_path, tls_cert=pki.server.cert, tls_key=pki.server.key
    ) as server:
        assert server.url.startswith("https://")
        assert (await get(f"{server.url}/healthz", client_context(pki, None)))[0] == 200


async def test_with_a_client_ca_only_the_scheduler_s_certificate_gets_an_answer(
    pki: Pki, tmp_path: Path
) -> None:
    async with serving(
        FakeApiServer(),
        tmp_path,
        tls_cert=pki.server.cert,
        tls_key=pki.server.key,
        client_ca=pki.ca.path,
    ) as server:
        url = f"{server.url}/healthz"
        assert (await get(url, client_context(pki, pki.scheduler)))[0] == 200
        for client in (None, pki.stranger):
            with pytest.raises(aiohttp.ClientError):
                await get(url, client_context(pki, client))
        # Refused clients do not take the server down.
        assert (await get(url, client_context(pki, pki.scheduler)))[0] == 200


async def test_the_health_port_answers_probes_and_metrics_without_a_client_certificate(
    pki: Pki, tmp_path: Path
) -> None:
    async with serving(
        FakeApiServer(),
        tmp_path,
        tls_cert=pki.server.cert,
        tls_key=pki.server.key,
        client_ca=pki.ca.path,
        health_host="127.0.0.1",
        health_port=0,
    ) as server:
        health = f"http://127.0.0.1:{server.bound.health_port}"
        assert (await get(f"{health}/healthz"))[0] == 200
        assert (await get(f"{health}/readyz"))[0] in (200, 503)
        status, metrics = await get(f"{health}/metrics")
        assert status == 200
        assert "gpuclass_extender_cache_ready" in metrics
        # The verbs and debug views are not there: only the TLS port serves them.
        for path in ("/filter", "/prioritize", "/bind"):
            async with aiohttp.ClientSession() as session:
                response = await session.post(f"{health}{path}", data=b"{}")
                assert response.status == 404
        assert (await get(f"{health}/debug/cache"))[0] == 404


async def test_the_admission_port_serves_mutate_over_tls_without_a_client_certificate(
    pki: Pki, tmp_path: Path
) -> None:
    """The API server calls webhooks with no client certificate: --admission-port serves
    /mutate (and probes) alone, with the serving certificate, while --client-ca still
    guards the verbs."""
    async with serving(
        FakeApiServer(),
        tmp_path,
        tls_cert=pki.server.cert,
        tls_key=pki.server.key,
        client_ca=pki.ca.path,
        admission_host="127.0.0.1",
        admission_port=0,
    ) as server:
        webhook = f"https://127.0.0.1:{server.bound.admission_port}"
        apiserver = client_context(pki, None)
        assert (await get(f"{webhook}/healthz", apiserver))[0] == 200
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u1", "kind": {"kind": "Pod"}, "operation": "DELETE"},
        }
        connector = aiohttp.TCPConnector(ssl=apiserver)
        async with aiohttp.ClientSession(connector=connector) as session:
            response = await session.post(f"{webhook}/mutate", json=review)
            assert response.status == 200
            answer = await response.json()
            assert answer["response"] == {"uid": "u1", "allowed": True}
            for path in ("/filter", "/bind", "/debug/cache"):
                response = await session.post(f"{webhook}{path}", data=b"{}")
                assert response.status in (404, 405)
        # The verbs' port still wants the scheduler's certificate, and has no /mutate.
        with pytest.raises(aiohttp.ClientError):
            await get(f"{server.url}/healthz", apiserver)
        scheduler = client_context(pki, pki.scheduler)
        assert (await get(f"{server.url}/mutate", scheduler))[0] == 404


async def served_common_name(port: int, pki: Pki) -> str:
    """The common name of the certificate a new TLS connection to the server presents."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(pki, pki.scheduler)
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    subject = x509.load_der_x509_certificate(der).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


async def test_a_rotated_certificate_is_served_without_a_restart_and_a_broken_one_is_refused(
    pki: Pki, tmp_path: Path
) -> None:
    # The files the Secret mount holds; cert-manager replaces them under the server.
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    renewed = pki.ca.issue("gpuclass-extender-renewed", server=True)
    async with serving(
        FakeApiServer(),
        tmp_path,
        tls_cert=cert,
        tls_key=key,
        client_ca=pki.ca.path,
        tls_poll_seconds=0.05,
    ) as server:
        port = server.bound.port
        assert await served_common_name(port, pki) == "gpuclass-extender"

        key.write_bytes(renewed.key.read_bytes())
        cert.write_bytes(renewed.cert.read_bytes())
        for _ in range(100):
            if await served_common_name(port, pki) == "gpuclass-extender-renewed":
                break
            await asyncio.sleep(0.05)
        assert await served_common_name(port, pki) == "gpuclass-extender-renewed"

        async def reloads(result: str) -> float:
            status, text = await get(f"{server.url}/metrics", client_context(pki, pki.scheduler))
            assert status == 200
            return metric(text, "gpuclass_extender_tls_reloads_total", result=result) or 0.0

        assert await reloads("reloaded") >= 1
        # (The rotation above may itself have been seen half done: count from here.)
        rejected = await reloads("rejected")
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nhalf written")
        async with asyncio.timeout(5):
            while await reloads("rejected") == rejected:  # a poll read the broken file
                await asyncio.sleep(0.05)
        # Still serving, with the last good certificate.
        assert await served_common_name(port, pki) == "gpuclass-extender-renewed"
        # ... and still polling: the next good pair is served.
        again = pki.ca.issue("gpuclass-extender-again", server=True)
        key.write_bytes(again.key.read_bytes())
        cert.write_bytes(again.cert.read_bytes())
        async with asyncio.timeout(5):
            while await served_common_name(port, pki) != "gpuclass-extender-again":
                await asyncio.sleep(0.05)
