"""Per-node features the rules read, derived once from the Node object and the policy."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import yaml

from extender.policy import load_policy_text
from extender.state import HOSTNAME_KEY, node_features
from extender.state.features import domain_of
from extender.wire import Node
from tests.builders import EXAMPLE_POLICY, PREFIX, example_policy, make_node, node_dict

ZONE = "topology.kubernetes.io/zone"


def test_a_gpu_node_gets_its_class_count_and_whole_free_devices() -> None:
    features = node_features(make_node("n1", "A100-80GB", gpus=4), example_policy())

    assert features.name == "n1"
    assert (features.gpu_class.name, features.gpu_class.rank) == ("premium", 0)
    assert features.gpu_count == 4
    assert features.free == [1000] * 4
    assert (features.capacity_milli, features.free_milli) == (4000, 4000)
    assert features.held == {}
    assert features.dedicated_to is None
    assert features.findings == ()
    assert features.resource_version == "1"
    assert features.domains == {HOSTNAME_KEY: "n1"}


def test_a_cpu_node_has_no_gpus_and_no_class() -> None:
    features = node_features(make_node("cpu-1", None, gpus=0), example_policy())

    assert (features.gpu_count, features.free, features.gpu_class.name) == (0, [], None)


@pytest.mark.parametrize(
    ("allocatable", "count", "finding"),
    [
        ("8", 8, None),
        (4, 4, None),
        ("1k", 1000, None),
        ("500m", 0, "allocatable nvidia.com/gpu: '500m' is not a whole, non-negative count"),
        ("lots", 0, "allocatable nvidia.com/gpu: 'lots' is not a quantity"),
        # Found by fuzzing: the cache keeps one entry per GPU, so this ran out of memory.
        ("1e9", 0, "allocatable nvidia.com/gpu: '1e9' is more GPUs than a node holds"),
        (2**70, 0, f"allocatable nvidia.com/gpu: {2**70} is more GPUs than a node holds"),
    ],
    ids=["string", "integer", "suffix", "fraction", "garbage", "absurd", "beyond-64-bits"],
)
def test_the_gpu_count_comes_from_allocatable_and_a_bad_value_is_a_finding(
    allocatable: Any, count: int, finding: str | None
) -> None:
    data = node_dict("n1", "T4", gpus=1)
    data["status"]["allocatable"]["nvidia.com/gpu"] = allocatable

    features = node_features(msgspec.convert(data, Node), example_policy())

    assert features.gpu_count == count
    if finding is None:
        assert features.findings == ()
    else:
        assert len(features.findings) == 1
        assert features.findings[0].startswith(finding)


def test_classification_findings_are_kept_on_the_node() -> None:
    node = make_node("n1", "RTX-6000")

    features = node_features(node, example_policy())

    assert features.findings == (
        "GPU product RTX-6000 (from nvidia.com/gpu.product) matches no class's products",
    )


def test_a_cordoned_node_is_marked_unschedulable() -> None:
    data = node_dict("n1")
    data["spec"]["unschedulable"] = True

    assert node_features(msgspec.convert(data, Node), example_policy()).unschedulable


def test_the_node_label_dedicates_a_node() -> None:
    node = make_node("n1", labels={f"{PREFIX}dedicated": "batch"})

    features = node_features(node, example_policy())

    assert (features.dedicated_to, features.dedication_mode) == ("batch", "hard")


def test_domains_are_computed_for_every_topology_key_the_policy_uses() -> None:
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    doc["workloadClasses"]["interactive"]["separation"]["topologyKey"] = ZONE
    policy = load_policy_text(yaml.safe_dump(doc))

    zoned = node_features(make_node("n1", labels={ZONE: "eu-1a"}), policy)
    bare = node_features(make_node("n2"), policy)

    assert zoned.domains == {ZONE: "eu-1a", HOSTNAME_KEY: "n1"}
    assert bare.domains == {ZONE: f"{ZONE}=<unset>@n2", HOSTNAME_KEY: "n2"}


@pytest.mark.parametrize(
    ("labels", "key", "domain"),
    [
        ({HOSTNAME_KEY: "host-a"}, HOSTNAME_KEY, "host-a"),
        ({}, HOSTNAME_KEY, "n1"),
        ({ZONE: "z"}, ZONE, "z"),
        ({}, ZONE, f"{ZONE}=<unset>@n1"),
    ],
    ids=["hostname-label", "hostname-falls-back-to-name", "zone-label", "zone-unset-alone"],
)
def test_a_node_without_the_topology_label_is_a_domain_of_its_own(
    labels: dict[str, str], key: str, domain: str
) -> None:
    assert domain_of("n1", labels, key) == domain
