"""Field-by-field validation of the policy document: each mistake names path, value, want."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
import yaml

from extender.errors import PolicyError, PolicyIssue
from extender.policy import Policy, WorkloadName, load_policy_text

DELETE = object()


def put(doc: dict[str, Any], path: tuple[str | int, ...], value: object) -> None:
    """Set (or with DELETE remove) the value at `path`, creating mappings on the way."""
    target: Any = doc
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(target, dict) else target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


def load(doc: dict[str, Any]) -> Policy:
    return load_policy_text(yaml.safe_dump(doc, sort_keys=False))


def issues_of(doc: dict[str, Any]) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as caught:
        load(doc)
    return caught.value.issues


def test_a_minimal_policy_loads_with_documented_defaults(minimal_doc: dict[str, Any]) -> None:
    policy = load(minimal_doc)

    assert policy.class_names == ("premium", "standard", "economy")
    assert policy.rank_of == {"premium": 0, "standard": 1, "economy": 2}
    assert policy.gpu_resource == "nvidia.com/gpu"
    assert policy.keys.node_class == "gpuclass.example.io/class"
    assert policy.keys.pod_workload == "gpuclass.example.io/workload"
    assert policy.keys.pod_gpu_milli == "gpuclass.example.io/gpu-milli"
    assert policy.owner_kind_workloads == {"Job": "batch", "CronJob": "batch"}
    assert policy.default_workload == "batch"
    assert policy.default_dedication_mode == "hard"
    assert policy.dedicated_classes == {}
    assert policy.headroom == {}
    assert (policy.weights.class_fit, policy.weights.separation) == (4.0, 3.0)
    assert (policy.weights.headroom, policy.weights.dedication, policy.weights.packing) == (
        2.0,
        2.0,
        1.0,
    )
    batch = policy.workloads[WorkloadName("batch")]
    assert batch.required_classes is None
    assert batch.min_class is None
    assert batch.packing == "pack"
    assert batch.separation.mode == "soft"
    assert batch.separation.topology_key == "kubernetes.io/hostname"
    nc = policy.document.node_classification
    assert nc.product_labels[0] == "nvidia.com/gpu.product"
    assert nc.on_conflict == "derived"


def test_the_label_prefix_moves_every_key(minimal_doc: dict[str, Any]) -> None:
    minimal_doc["labelPrefix"] = "gpu.acme.org/"
    minimal_doc["nodeClassification"] = {"classLabel": "acme.org/tier"}

    keys = load(minimal_doc).keys

    assert keys.node_class == "acme.org/tier"
    assert keys.node_dedicated == "gpu.acme.org/dedicated"
    assert keys.pod_required_classes == "gpu.acme.org/required-classes"
    assert keys.pod_tolerate_dedicated == "gpu.acme.org/tolerate-dedicated"


# (keys to edit, new value, path named in the issue, value named, words of the expectation)
FIELD_MISTAKES: list[tuple[tuple[str | int, ...], object, str, object, str]] = [
    (("gpuClasses", 0, "prodcts"), ["H100"], "gpuClasses[0].prodcts", ["H100"], "no such field"),
    (("weight",), {"classFit": 1}, "weight", {"classFit": 1}, "check spelling"),
    (("weights", "classFit"), "abc", "weights.classFit", "abc", "a number"),
    (("gpuClasses", 0, "products"), "H100", "gpuClasses[0].products", "H100", "a list"),
    (("gpuClasses", 1, "name"), "Standard_1", "gpuClasses[1].name", "Standard_1", "DNS label"),
    (("gpuClasses",), [], "gpuClasses", [], "at least 1 item"),
    (("gpuClasses",), DELETE, "gpuClasses", "<absent>", "required field"),
    (
        ("workloadClasses",),
        {"Batch": {}},
        "workloadClasses",
        {"Batch": {}},
        "must be DNS labels, got ['Batch']",
    ),
    (("apiVersion",), "gpuclass.example.io/v1", "apiVersion", "gpuclass.example.io/v1", "v1alpha1"),
    (("kind",), "Policy", "kind", "Policy", "GpuClassPolicy"),
    (
        ("nodeClassification", "classLabel"),
        "not a key!",
        "nodeClassification.classLabel",
        "not a key!",
        "Kubernetes label key",
    ),
    (
        ("nodeClassification", "onConflict"),
        "label",
        "nodeClassification.onConflict",
        "label",
        "'derived' or 'explicit'",
    ),
    (
        ("headroom",),
        [{"class": "premium", "reserve": 1.5, "for": ["interactive"]}],
        "headroom[0].reserve",
        1.5,
        "less than 1",
    ),
    (
        ("headroom",),
        [{"class": "premium", "reserve": -0.1, "for": ["interactive"]}],
        "headroom[0].reserve",
        -0.1,
        "a number at least 0",
    ),
    (
        ("headroom",),
        [{"class": "premium", "reserve": 0.2, "for": []}],
        "headroom[0].for",
        [],
        "at least 1 item",
    ),
    (
        ("workloadClasses", "interactive", "gpuAttributes"),
        [{"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["40GB"]}],
        "workloadClasses.interactive.gpuAttributes[0]",
        {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["40GB"]},
        "64 bits), got '40GB'",
    ),
    (
        ("workloadClasses", "interactive", "gpuAttributes"),
        [{"key": "nvidia.com/gpu.memory", "operator": "Lt", "values": ["1", "2"]}],
        "workloadClasses.interactive.gpuAttributes[0]",
        {"key": "nvidia.com/gpu.memory", "operator": "Lt", "values": ["1", "2"]},
        "exactly one integer value",
    ),
    (
        ("workloadClasses", "interactive", "gpuAttributes"),
        [{"key": "nvidia.com/gpu.family", "operator": "In"}],
        "workloadClasses.interactive.gpuAttributes[0]",
        {"key": "nvidia.com/gpu.family", "operator": "In"},
        "In needs at least one value",
    ),
    (
        ("workloadClasses", "interactive", "gpuAttributes"),
        [{"key": "nvidia.com/mig.capable", "operator": "Exists", "values": ["true"]}],
        "workloadClasses.interactive.gpuAttributes[0]",
        {"key": "nvidia.com/mig.capable", "operator": "Exists", "values": ["true"]},
        "Exists takes no values",
    ),
    (
        ("workloadClasses", "interactive", "gpuAttributes"),
        [{"key": "nvidia.com/gpu.memory", "operator": "GreaterThan", "values": ["1"]}],
        "workloadClasses.interactive.gpuAttributes[0].operator",
        "GreaterThan",
        "'In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt' or 'Lt'",
    ),
    (
        ("workloadClasses", "batch", "separation", "mode"),
        "strict",
        "workloadClasses.batch.separation.mode",
        "strict",
        "'hard', 'soft' or 'off'",
    ),
    (
        ("weights",),
        {"classFit": 0, "separation": 0, "headroom": 0, "dedication": 0, "packing": 0},
        "weights",
        {"classFit": 0, "separation": 0, "headroom": 0, "dedication": 0, "packing": 0},
        "at least one weight must be positive",
    ),
    (("weights", "packing"), -1, "weights.packing", -1, "a number at least 0"),
]


@pytest.mark.parametrize(
    ("keys", "value", "path", "shown", "expected"),
    FIELD_MISTAKES,
    ids=[
        "unknown-field-typo",
        "unknown-top-level-field",
        "weight-not-a-number",
        "products-not-a-list",
        "class-name-not-dns-label",
        "no-classes",
        "classes-missing",
        "workload-name-not-dns-label",
        "wrong-api-version",
        "wrong-kind",
        "class-label-not-a-label-key",
        "unknown-on-conflict",
        "reserve-too-high",
        "reserve-negative",
        "headroom-for-nobody",
        "gt-with-non-integer",
        "lt-with-two-values",
        "in-without-values",
        "exists-with-values",
        "unknown-operator",
        "unknown-separation-mode",
        "all-weights-zero",
        "negative-weight",
    ],
)
def test_a_bad_field_is_reported_with_its_path_value_and_expectation(
    minimal_doc: dict[str, Any],
    keys: tuple[str | int, ...],
    value: object,
    path: str,
    shown: object,
    expected: str,
) -> None:
    put(minimal_doc, keys, value)

    issues = issues_of(minimal_doc)

    assert [issue.path for issue in issues] == [path]
    assert issues[0].value == shown
    assert expected in issues[0].expected


def test_every_field_mistake_is_reported_at_once(minimal_doc: dict[str, Any]) -> None:
    put(minimal_doc, ("gpuClasses", 0, "prodcts"), ["H100"])
    put(minimal_doc, ("gpuClasses", 2, "name"), "Economy")
    put(minimal_doc, ("weights", "classFit"), "high")
    put(minimal_doc, ("kind",), "Policy")

    paths = {issue.path for issue in issues_of(minimal_doc)}

    assert paths == {"gpuClasses[0].prodcts", "gpuClasses[2].name", "weights.classFit", "kind"}


def test_the_error_message_lists_each_issue_on_its_own_line(minimal_doc: dict[str, Any]) -> None:
    put(minimal_doc, ("weights", "classFit"), "abc")
    put(minimal_doc, ("gpuClasses", 0, "prodcts"), ["H100"])

    with pytest.raises(PolicyError) as caught:
        load_policy_text(yaml.safe_dump(minimal_doc), source="/etc/gpuclass/policy.yaml")

    message = str(caught.value)
    assert message.startswith("/etc/gpuclass/policy.yaml: 2 problem(s)\n")
    assert "  weights.classFit: got 'abc', expected " in message
    assert "  gpuClasses[0].prodcts: got ['H100'], expected no such field" in message
    body = caught.value.as_dict()
    assert body["error"] == "PolicyError"
    assert {i["path"] for i in body["issues"]} == {"weights.classFit", "gpuClasses[0].prodcts"}


def test_a_policy_is_immutable_once_loaded(minimal_doc: dict[str, Any]) -> None:
    policy = load(minimal_doc)

    with pytest.raises(pydantic.ValidationError, match="frozen"):
        policy.document.gpu_classes[0].name = "gold"  # type: ignore[misc]
