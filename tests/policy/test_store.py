"""Hot reload: a changed valid file replaces the policy; anything else keeps the old one."""

from __future__ import annotations

from pathlib import Path

import pytest

from extender.errors import PolicyError
from extender.policy import ClassName, Policy, PolicyStore
from tests.builders import EXAMPLE_POLICY

EXAMPLE = EXAMPLE_POLICY.read_text()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE)
    return path


@pytest.fixture
def store(policy_file: Path) -> PolicyStore:
    return PolicyStore.from_file(policy_file)


def test_an_unchanged_file_is_unchanged(store: PolicyStore) -> None:
    before = store.current

    assert store.reload().result == "unchanged"
    assert store.current is before


def test_a_changed_valid_file_is_applied_and_listeners_hear_of_it(
    store: PolicyStore, policy_file: Path
) -> None:
    heard: list[Policy] = []
    store.on_change(heard.append)
    policy_file.write_text(EXAMPLE.replace("reserve: 0.25", "reserve: 0.5"))

    outcome = store.reload()

    assert (outcome.result, outcome.error) == ("applied", None)
    assert store.current.headroom[ClassName("premium")].reserve == 0.5
    assert heard == [store.current]
    assert store.reload().result == "unchanged"


def test_a_bad_file_is_rejected_and_the_old_policy_stays(
    store: PolicyStore, policy_file: Path
) -> None:
    heard: list[Policy] = []
    store.on_change(heard.append)
    before = store.current
    policy_file.write_text(EXAMPLE.replace("reserve: 0.25", "reserve: 2"))

    outcome = store.reload()

    assert outcome.result == "rejected"
    assert isinstance(outcome.error, PolicyError)
    assert [issue.path for issue in outcome.error.issues] == ["headroom[0].reserve"]
    assert outcome.error.source == str(policy_file)
    assert store.current is before
    assert heard == []


def test_the_same_bad_file_is_reported_once(store: PolicyStore, policy_file: Path) -> None:
    policy_file.write_text("kind: [")

    assert store.reload().result == "rejected"
    assert store.reload().result == "unchanged"
    assert store.reload().result == "unchanged"


def test_fixing_a_bad_file_applies_the_fix(store: PolicyStore, policy_file: Path) -> None:
    policy_file.write_text("kind: [")
    store.reload()
    policy_file.write_text(EXAMPLE.replace("classFit: 4", "classFit: 5"))

    assert store.reload().result == "applied"
    assert store.current.weights.class_fit == 5.0


def test_restoring_the_applied_file_after_a_bad_one_reapplies_it(
    store: PolicyStore, policy_file: Path
) -> None:
    before = store.current
    policy_file.write_text("kind: [")
    store.reload()
    policy_file.write_text(EXAMPLE)

    assert store.reload().result == "applied"
    assert store.current.document == before.document


def test_a_missing_file_is_rejected_every_time_and_the_old_policy_stays(
    store: PolicyStore, policy_file: Path
) -> None:
    before = store.current
    policy_file.unlink()

    first, second = store.reload(), store.reload()

    assert (first.result, second.result) == ("rejected", "rejected")
    assert first.error is not None
    assert first.error.issues[0].path == "<file>"
    assert store.current is before


def test_a_configmap_style_symlink_swap_is_seen_by_content(tmp_path: Path) -> None:
    # Kubelet updates a ConfigMap volume by pointing a symlink at a new directory.
    old, new = tmp_path / "..2024_01", tmp_path / "..2024_02"
    old.mkdir()
    new.mkdir()
    (old / "policy.yaml").write_text(EXAMPLE)
    (new / "policy.yaml").write_text(EXAMPLE.replace("classFit: 4", "classFit: 6"))
    data = tmp_path / "..data"
    data.symlink_to(old.name)
    path = tmp_path / "policy.yaml"
    path.symlink_to("..data/policy.yaml")
    store = PolicyStore.from_file(path)

    tmp = tmp_path / "..data_tmp"
    tmp.symlink_to(new.name)
    tmp.replace(data)

    assert store.reload().result == "applied"
    assert store.current.weights.class_fit == 6.0


def test_a_store_without_a_file_never_reloads(store: PolicyStore) -> None:
    fixed = PolicyStore(store.current)

    assert fixed.reload().result == "unchanged"
    assert fixed.path is None


def test_a_store_cannot_start_from_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("apiVersion: v1\n")

    with pytest.raises(PolicyError):
        PolicyStore.from_file(path)
