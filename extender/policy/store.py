"""The policy in force, and hot reload from its file that never replaces it with a bad one."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from extender.errors import PolicyError, PolicyIssue
from extender.policy.compiled import Policy
from extender.policy.loader import load_policy_text

ReloadResult = Literal["unchanged", "applied", "rejected"]


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    result: ReloadResult
    error: PolicyError | None = None


class PolicyStore:
    """Holds the current policy; `reload()` swaps in a changed file only if it is valid.

    ConfigMap volumes update by swapping a symlink, so the file's content hash (not its
    mtime) decides whether it changed.
    """

    def __init__(self, policy: Policy, path: Path | None = None) -> None:
        self._policy = policy
        self._path = path
        self._seen_digest = policy.digest
        self._listeners: list[Callable[[Policy], None]] = []

    @classmethod
    def from_file(cls, path: Path) -> PolicyStore:
        from extender.policy.loader import load_policy_file

        return cls(load_policy_file(path), path)

    @property
    def current(self) -> Policy:
        return self._policy

    @property
    def path(self) -> Path | None:
        return self._path

    def on_change(self, listener: Callable[[Policy], None]) -> None:
        self._listeners.append(listener)

    def reload(self) -> ReloadOutcome:
        """Re-read the file; apply it when changed and valid, keep the old one otherwise."""
        if self._path is None:
            return ReloadOutcome("unchanged")
        try:
            raw = self._path.read_bytes()
        except OSError as exc:
            error = PolicyError(
                [PolicyIssue("<file>", str(self._path), f"a readable file ({exc.strerror})")],
                str(self._path),
            )
            return ReloadOutcome("rejected", error)
        digest = hashlib.sha256(raw).hexdigest()[:16]
        if digest == self._seen_digest:
            return ReloadOutcome("unchanged")
        # Remember the bad digest too, so one bad file is reported once, not every poll.
        self._seen_digest = digest
        try:
            policy = load_policy_text(raw, source=str(self._path))
        except PolicyError as exc:
            return ReloadOutcome("rejected", exc)
        self._policy = policy
        for listener in self._listeners:
            listener(policy)
        return ReloadOutcome("applied")
