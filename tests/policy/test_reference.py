"""The policy reference in docs/ is generated from the schema and must match it."""

from __future__ import annotations

from extender.policy.model import PolicyDocument
from extender.policy.reference import SECTIONS, reference_markdown
from tests.builders import REPO


def test_the_policy_reference_in_docs_matches_the_schema() -> None:
    committed = (REPO / "docs" / "policy-reference.md").read_text()
    assert committed == reference_markdown(), (
        "docs/policy-reference.md is stale: run "
        "`.venv/bin/gpuclass-extender policy-reference > docs/policy-reference.md`"
    )


def test_every_policy_field_is_documented() -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for model in SECTIONS
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undocumented == []


def test_the_reference_covers_every_model_the_document_uses() -> None:
    reachable: set[str] = set()

    def walk(model: type) -> None:
        reachable.add(model.__name__)
        for field in model.model_fields.values():  # type: ignore[attr-defined]
            for candidate in _models_in(field.annotation):
                if candidate.__name__ not in reachable:
                    walk(candidate)

    walk(PolicyDocument)
    assert reachable == {m.__name__ for m in SECTIONS}


def _models_in(annotation: object) -> list[type]:
    from typing import get_args

    from pydantic import BaseModel

    found: list[type] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return found
