"""admission.k8s.io/v1 AdmissionReview: the parts a mutating webhook reads and writes."""

from __future__ import annotations

import base64

import msgspec

from extender.errors import WireError
from extender.wire.codec import decode_as

ADMISSION_API_VERSION = "admission.k8s.io/v1"
ADMISSION_KIND = "AdmissionReview"
# The API server may truncate longer warnings; keep ours whole.
MAX_WARNING_CHARS = 256


class GroupVersionKind(msgspec.Struct, frozen=True):
    group: str = ""
    version: str = ""
    kind: str = ""


class AdmissionRequest(msgspec.Struct, frozen=True):
    uid: str = ""
    kind: GroupVersionKind = GroupVersionKind()
    subResource: str = ""
    name: str = ""
    namespace: str = ""
    operation: str = ""
    # The object as admitted so far (earlier webhooks' patches applied), kept raw: the patch
    # is computed against the whole object, not the parts our Pod type reads.
    # (msgspec.Raw takes no union with None: absent is empty, null is b"null").
    object: msgspec.Raw = msgspec.Raw()


class AdmissionReview(msgspec.Struct, frozen=True):
    apiVersion: str = ""
    kind: str = ""
    request: AdmissionRequest | None = None


_review_decoder = msgspec.json.Decoder(AdmissionReview)
_encoder = msgspec.json.Encoder()


def decode_admission_review(body: bytes) -> AdmissionRequest:
    """The request of an AdmissionReview v1; WireError says precisely what is wrong."""
    if not body:
        raise WireError("AdmissionReview: empty body, expected a JSON object")
    review = decode_as(_review_decoder, body, "AdmissionReview")
    if review.apiVersion != ADMISSION_API_VERSION or review.kind != ADMISSION_KIND:
        raise WireError(
            f"AdmissionReview: apiVersion {review.apiVersion!r}, kind {review.kind!r}; expected "
            f"{ADMISSION_API_VERSION} {ADMISSION_KIND} (admissionReviewVersions: [v1])"
        )
    if review.request is None:
        raise WireError("AdmissionReview: 'request' is missing or null")
    if not review.request.uid:
        raise WireError("AdmissionReview: request.uid is missing or empty")
    return review.request


def encode_admission_response(
    uid: str, patch: bytes | None = None, warnings: tuple[str, ...] = ()
) -> bytes:
    """An AdmissionReview that admits the object, with a JSON patch if one is given."""
    response: dict[str, object] = {"uid": uid, "allowed": True}
    if patch is not None:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(patch).decode()
    if warnings:
        response["warnings"] = [_short(w) for w in warnings]
    return _encoder.encode(
        {"apiVersion": ADMISSION_API_VERSION, "kind": ADMISSION_KIND, "response": response}
    )


def _short(warning: str) -> str:
    if len(warning) <= MAX_WARNING_CHARS:
        return warning
    return warning[: MAX_WARNING_CHARS - 3] + "..."
