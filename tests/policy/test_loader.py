"""Loading policy files: YAML shape, cross-references between names, and the dump round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from extender.errors import PolicyError, PolicyIssue
from extender.policy import ClassName, WorkloadName, dump_policy, load_policy_file, load_policy_text
from extender.policy.loader import MAX_POLICY_BYTES, allowed_classes
from tests.builders import EXAMPLE_POLICY, example_policy


def issues_of(text: str) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text)
    return caught.value.issues


def doc_issues(doc: dict[str, Any]) -> list[PolicyIssue]:
    return issues_of(yaml.safe_dump(doc, sort_keys=False))


# ---- good files ------------------------------------------------------------------------


def test_the_example_policy_shipped_in_manifests_loads() -> None:
    policy = load_policy_file(EXAMPLE_POLICY)

    assert policy.class_names == ("premium", "standard", "economy")
    assert set(policy.workloads) == {"interactive", "batch"}
    assert policy.workloads[WorkloadName("interactive")].min_class == "standard"
    assert policy.workloads[WorkloadName("interactive")].preferred_classes == (
        "premium",
        "standard",
    )
    assert policy.workloads[WorkloadName("interactive")].packing == "spread"
    assert policy.priority_class_workloads == {"inference-critical": "interactive"}
    assert policy.headroom[ClassName("premium")].reserve == 0.25
    assert policy.headroom[ClassName("premium")].mode == "hard"
    assert policy.instance_types["p4de.24xlarge"] == "A100-80GB"
    assert policy.topology_keys == {"kubernetes.io/hostname"}


def test_the_most_specific_product_pattern_is_tried_first() -> None:
    patterns = [pattern for pattern, _ in example_policy().product_patterns]

    assert patterns.index("A100-80GB") < patterns.index("A100")


def test_a_policy_file_remembers_a_digest_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(EXAMPLE_POLICY.read_bytes())

    same = load_policy_file(path)
    edited = load_policy_text(EXAMPLE_POLICY.read_text() + "\n# a comment\n")

    assert same.digest == example_policy().digest
    assert edited.digest != same.digest
    assert edited.document == same.document


# ---- bad YAML and bad files ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "value", "expected"),
    [
        ("apiVersion: [v1\nkind: X\n", "line 2, column 5", "expected ',' or ']'", "valid YAML"),
        ("a: 1\n  b: 2\n", "line 2, column 4", "mapping values are not allowed", "valid YAML"),
        ("\t- a\n", "line 1, column 1", "cannot start any token", "valid YAML"),
        ("a: 1\n---\nb: 2\n", "<document>", "2 documents", "exactly one"),
        ("", "<document>", "0 documents", "exactly one"),
        ("# only a comment\n", "<document>", "0 documents", "exactly one"),
        ("- premium\n- standard\n", "<document>", "list", "a mapping"),
        ("just a string\n", "<document>", "str", "a mapping"),
    ],
    ids=[
        "unclosed-list",
        "bad-indentation",
        "tab-indentation",
        "two-documents",
        "empty-file",
        "comment-only",
        "top-level-list",
        "top-level-scalar",
    ],
)
def test_a_file_that_is_not_one_yaml_mapping_is_rejected_with_where_and_why(
    text: str, path: str, value: str, expected: str
) -> None:
    [issue] = issues_of(text)

    assert issue.path == path
    assert value in str(issue.value)
    assert issue.expected == expected


def test_an_oversized_file_is_rejected_before_parsing() -> None:
    [issue] = issues_of("#" * (MAX_POLICY_BYTES + 1))

    assert issue.path == "<file>"
    assert issue.expected == f"at most {MAX_POLICY_BYTES} bytes"


def test_a_missing_file_is_a_policy_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)

    [issue] = caught.value.issues
    assert issue.path == "<file>"
    assert issue.value == str(path)
    assert "readable file" in issue.expected
    assert caught.value.source == str(path)


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("kind: GpuClassPolicy\n")

    with pytest.raises(PolicyError, match=f"^{path}: "):
        load_policy_file(path)


# ---- cross-references ------------------------------------------------------------------

KNOWN_CLASSES = "one of the gpuClasses ['premium', 'standard', 'economy']"
KNOWN_WORKLOADS = "one of the workloadClasses ['batch', 'interactive']"


REFERENCE_MISTAKES: list[tuple[str, dict[str, Any], str, object, str]] = [
    (
        "unknown-preferred-class",
        {"workloadClasses": {"interactive": {"preferredClasses": ["premium", "gold"]}}},
        "workloadClasses.interactive.preferredClasses[1]",
        "gold",
        KNOWN_CLASSES,
    ),
    (
        "unknown-required-class",
        {"workloadClasses": {"interactive": {"requiredClasses": ["premium", "silver"]}}},
        "workloadClasses.interactive.requiredClasses[1]",
        "silver",
        KNOWN_CLASSES,
    ),
    (
        "unknown-min-class",
        {"workloadClasses": {"interactive": {"minClass": "gold"}}},
        "workloadClasses.interactive.minClass",
        "gold",
        KNOWN_CLASSES,
    ),
    (
        "unknown-excluded-class",
        {"workloadClasses": {"batch": {"excludedClasses": ["bronze"]}}},
        "workloadClasses.batch.excludedClasses[0]",
        "bronze",
        KNOWN_CLASSES,
    ),
    (
        "unknown-default-workload",
        {"workloadClassification": {"default": "training"}},
        "workloadClassification.default",
        "training",
        KNOWN_WORKLOADS,
    ),
    (
        "unknown-priority-class-workload",
        {"workloadClassification": {"default": "batch", "priorityClassNames": {"hi": "online"}}},
        "workloadClassification.priorityClassNames.hi",
        "online",
        KNOWN_WORKLOADS,
    ),
    (
        "unknown-owner-kind-workload",
        {"workloadClassification": {"default": "batch", "ownerKinds": {"Job": "training"}}},
        "workloadClassification.ownerKinds.Job",
        "training",
        KNOWN_WORKLOADS,
    ),
    (
        "unknown-avoided-workload",
        {"workloadClasses": {"batch": {"separation": {"avoid": ["interactive", "serving"]}}}},
        "workloadClasses.batch.separation.avoid[1]",
        "serving",
        KNOWN_WORKLOADS,
    ),
    (
        "workload-avoids-itself",
        {"workloadClasses": {"batch": {"separation": {"avoid": ["batch"]}}}},
        "workloadClasses.batch.separation.avoid[0]",
        "batch",
        "another workload class than itself",
    ),
    (
        "required-also-excluded",
        {
            "workloadClasses": {
                "interactive": {"requiredClasses": ["premium"], "excludedClasses": ["premium"]}
            }
        },
        "workloadClasses.interactive",
        {"requiredClasses": ("premium",), "minClass": None, "excludedClasses": ("premium",)},
        "required, minimum and excluded classes that leave at least one class allowed",
    ),
    (
        "required-below-min-class",
        {
            "workloadClasses": {
                "interactive": {"requiredClasses": ["economy"], "minClass": "standard"}
            }
        },
        "workloadClasses.interactive",
        {"requiredClasses": ("economy",), "minClass": "standard", "excludedClasses": ()},
        "required, minimum and excluded classes that leave at least one class allowed",
    ),
    (
        "preferred-class-not-allowed",
        {
            "workloadClasses": {
                "interactive": {"minClass": "standard", "preferredClasses": ["economy"]}
            }
        },
        "workloadClasses.interactive.preferredClasses[0]",
        "economy",
        "a class this workload may use ['premium', 'standard']",
    ),
    (
        "preferred-class-excluded",
        {
            "workloadClasses": {
                "batch": {"excludedClasses": ["premium"], "preferredClasses": ["premium"]}
            }
        },
        "workloadClasses.batch.preferredClasses[0]",
        "premium",
        "a class this workload may use ['standard', 'economy']",
    ),
    (
        "duplicate-product-across-classes",
        {"gpuClasses": {2: {"name": "economy", "products": ["T4", "nvidia-h100"]}}},
        "gpuClasses[2].products[1]",
        "nvidia-h100",
        "a product not already listed in class 'premium'",
    ),
    (
        "product-that-is-only-a-vendor",
        {"gpuClasses": {2: {"name": "economy", "products": ["NVIDIA"]}}},
        "gpuClasses[2].products[0]",
        "NVIDIA",
        "a GPU product name such as H100 or A100-80GB",
    ),
    (
        "duplicate-class-name",
        {"gpuClasses": {2: {"name": "premium", "products": ["T4"]}}},
        "gpuClasses[2].name",
        "premium",
        "a name not used by another class",
    ),
    (
        "headroom-for-unknown-class",
        {"headroom": [{"class": "gold", "reserve": 0.2, "for": ["interactive"]}]},
        "headroom[0].class",
        "gold",
        KNOWN_CLASSES,
    ),
    (
        "headroom-for-unknown-workload",
        {"headroom": [{"class": "premium", "reserve": 0.2, "for": ["serving"]}]},
        "headroom[0].for[0]",
        "serving",
        KNOWN_WORKLOADS,
    ),
    (
        "two-headroom-entries-for-one-class",
        {
            "headroom": [
                {"class": "premium", "reserve": 0.2, "for": ["interactive"]},
                {"class": "premium", "reserve": 0.3, "for": ["interactive"]},
            ]
        },
        "headroom[1].class",
        "premium",
        "one headroom entry per class",
    ),
    (
        "dedicated-unknown-class",
        {"dedicated": {"classes": [{"class": "gold", "workload": "interactive"}]}},
        "dedicated.classes[0].class",
        "gold",
        KNOWN_CLASSES,
    ),
    (
        "dedicated-to-unknown-workload",
        {"dedicated": {"classes": [{"class": "premium", "workload": "serving"}]}},
        "dedicated.classes[0].workload",
        "serving",
        KNOWN_WORKLOADS,
    ),
]


def _merge(doc: Any, change: Any) -> Any:
    """Deep-merge `change` into `doc`; an int key edits that item of a list."""
    if isinstance(change, dict) and isinstance(doc, dict | list):
        for key, value in change.items():
            if isinstance(doc, dict) and key not in doc:
                doc[key] = value
            else:
                doc[key] = _merge(doc[key], value)
        return doc
    return change


@pytest.mark.parametrize(
    ("change", "path", "value", "expected"),
    [case[1:] for case in REFERENCE_MISTAKES],
    ids=[case[0] for case in REFERENCE_MISTAKES],
)
def test_a_name_or_wish_that_does_not_add_up_is_reported_with_path_value_and_expectation(
    minimal_doc: dict[str, Any], change: dict[str, Any], path: str, value: object, expected: str
) -> None:
    _merge(minimal_doc, change)

    issues = doc_issues(minimal_doc)

    assert [issue.path for issue in issues] == [path]
    assert issues[0].value == value
    assert issues[0].expected == expected


def test_every_reference_mistake_is_reported_at_once(minimal_doc: dict[str, Any]) -> None:
    minimal_doc["workloadClassification"] = {"default": "training"}
    minimal_doc["workloadClasses"]["interactive"] = {
        "minClass": "gold",
        "preferredClasses": ["silver"],
        "separation": {"avoid": ["serving"]},
    }
    minimal_doc["gpuClasses"][2]["products"] = ["T4", "H100"]
    minimal_doc["headroom"] = [{"class": "bronze", "reserve": 0.1, "for": ["interactive"]}]

    paths = [issue.path for issue in doc_issues(minimal_doc)]

    assert paths == [
        "gpuClasses[2].products[1]",
        "workloadClassification.default",
        "workloadClasses.interactive.preferredClasses[0]",
        "workloadClasses.interactive.minClass",
        "workloadClasses.interactive.separation.avoid[0]",
        "headroom[0].class",
    ]


def test_the_same_product_listed_twice_in_one_class_is_harmless(
    minimal_doc: dict[str, Any],
) -> None:
    minimal_doc["gpuClasses"][2]["products"] = ["T4", "Tesla-T4"]

    policy = load_policy_text(yaml.safe_dump(minimal_doc))

    assert ("T4", "economy") in policy.product_patterns


@pytest.mark.parametrize(
    ("required", "min_class", "excluded", "allowed"),
    [
        (None, None, (), ["premium", "standard", "economy"]),
        (None, "standard", (), ["premium", "standard"]),
        (["economy", "premium"], None, (), ["premium", "economy"]),
        (None, "standard", ["premium"], ["standard"]),
        (["economy"], "standard", (), []),
        ([], None, (), []),
    ],
    ids=[
        "no-wishes",
        "min-tier",
        "required-set",
        "min-and-excluded",
        "required-below-min",
        "empty",
    ],
)
def test_allowed_classes_keep_tier_order_and_honour_every_wish(
    required: list[str] | None, min_class: str | None, excluded: list[str], allowed: list[str]
) -> None:
    classes = ["premium", "standard", "economy"]

    assert allowed_classes(classes, required, min_class, excluded) == allowed


# ---- dump ----------------------------------------------------------------------------


def test_the_example_policy_dumped_and_reloaded_is_the_same_document() -> None:
    policy = example_policy()

    again = load_policy_text(dump_policy(policy))

    assert again.document == policy.document
    assert again.product_patterns == policy.product_patterns
    assert again.workloads == policy.workloads


def test_a_minimal_policy_dumps_with_its_defaults_filled_in(minimal_doc: dict[str, Any]) -> None:
    policy = load_policy_text(yaml.safe_dump(minimal_doc))

    dumped = yaml.safe_load(dump_policy(policy))

    assert load_policy_text(dump_policy(policy)).document == policy.document
    assert dumped["weights"] == {
        "classFit": 4.0,
        "separation": 3.0,
        "headroom": 2.0,
        "dedication": 2.0,
        "packing": 1.0,
    }
    assert dumped["workloadClassification"]["ownerKinds"] == {"Job": "batch", "CronJob": "batch"}
    assert "classLabel" not in dumped["nodeClassification"]  # unset stays unset


def test_a_dumped_headroom_keeps_its_yaml_field_names() -> None:
    dumped = yaml.safe_load(dump_policy(example_policy()))

    assert dumped["headroom"] == [
        {"class": "premium", "reserve": 0.25, "for": ["interactive"], "mode": "hard"}
    ]
