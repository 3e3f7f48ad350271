"""Errors the extender raises on purpose.

ExtenderError
├── WireError      a request body that does not follow the extender protocol (HTTP 400)
│   └── BodyTooLarge                                                          (HTTP 413)
├── PolicyError    a policy document that fails validation; carries every issue at once
├── NotReady       the cluster cache has not finished its first sync (HTTP 503)
└── KubeError      the Kubernetes API refused or failed a call; `status` is its HTTP code
    └── WatchGone  a watch's resourceVersion is too old (410): relist
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ExtenderError(Exception):
    """Base of all errors this package raises on purpose."""

    http_status = 500

    def as_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "message": str(self)}


class WireError(ExtenderError):
    """The request body is not a valid extender protocol message."""

    http_status = 400


class NotReady(ExtenderError):
    http_status = 503


class Overloaded(ExtenderError):
    """Every request slot stayed busy for the whole time budget."""

    http_status = 503


class OverBudget(ExtenderError):
    """The request was not answered within its time budget (a slow client or API call)."""

    http_status = 503


class SlowClient(OverBudget):
    """The client did not send its whole body within the time budget."""

    http_status = 408


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One validation failure: where, what was found, what was expected."""

    path: str
    value: Any
    expected: str

    def __str__(self) -> str:
        return f"{self.path}: got {self.value!r}, expected {self.expected}"


class PolicyError(ExtenderError):
    """A policy document failed validation; `issues` lists every problem found."""

    http_status = 400

    def __init__(self, issues: list[PolicyIssue], source: str = "policy") -> None:
        self.issues = issues
        self.source = source
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{source}: {len(issues)} problem(s)\n{lines}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": "PolicyError",
            "source": self.source,
            "issues": [
                {"path": i.path, "value": repr(i.value), "expected": i.expected}
                for i in self.issues
            ],
        }


class KubeError(ExtenderError):
    """A Kubernetes API call failed; `status` is the HTTP status (0 for transport errors)."""

    http_status = 502

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class WatchGone(KubeError):
    """The watch's resourceVersion has been compacted away (410 Gone): relist."""


class WatchStalled(KubeError):
    """A watch stream went silent for longer than the API server's bookmarks allow."""
