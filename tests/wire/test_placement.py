"""Node-affinity expressions evaluated as the scheduler does, integers parsed as Go does."""

from __future__ import annotations

import pytest

from extender.policy.model import AttributeRequirement
from extender.rules import gpu_attributes
from extender.wire.placement import label_matches, parse_go_int

KEY = "nvidia.com/gpu.memory"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("20000", 20000),
        ("+7", 7),
        ("-1", -1),
        ("007", 7),
        (str(2**63 - 1), 2**63 - 1),
        (str(-(2**63)), -(2**63)),
        # strconv.ParseInt(s, 10, 64) refuses what Python's int() accepts:
        ("1_000", None),
        (" 7", None),
        ("7 ", None),
        ("\u0667", None),  # ARABIC-INDIC DIGIT SEVEN
        ("0x10", None),
        (str(2**63), None),  # out of int64
        ("", None),
        ("+", None),
        (None, None),
    ],
)
def test_integers_are_read_as_go_strconv_parseint_base_10(
    text: str | None, number: int | None
) -> None:
    assert parse_go_int(text) == number


@pytest.mark.parametrize("label", ["30_000", " 30000", "30000\n", "\u0663\u0660\u0660\u0660\u0660"])
def test_a_label_the_scheduler_cannot_parse_fails_gt_and_lt_in_every_evaluator(label: str) -> None:
    labels = {KEY: label}
    assert not label_matches(KEY, "Gt", ("20000",), labels)
    assert not label_matches(KEY, "Lt", ("40000",), labels)
    policy_requirement = AttributeRequirement(key=KEY, operator="Gt", values=("20000",))
    assert not gpu_attributes.satisfied(policy_requirement, labels)


@pytest.mark.parametrize("bound", ["1_000", " 1000", str(2**63)])
def test_a_policy_bound_kubernetes_would_not_parse_is_refused(bound: str) -> None:
    with pytest.raises(ValueError, match="decimal integer value"):
        AttributeRequirement(key=KEY, operator="Gt", values=(bound,))
