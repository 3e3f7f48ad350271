"""GPU product names as GFD, GKE and Karpenter spell them, reduced to one canonical form."""

from __future__ import annotations

import pytest

from extender.policy import normalise_product
from extender.policy.products import has_memory_token, pattern_matches, specificity, with_memory


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("NVIDIA-A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA-A100-PCIE-40GB", "A100-40GB"),
        ("Tesla-T4", "T4"),
        ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
        ("NVIDIA-H100-NVL", "H100-NVL"),
        ("nvidia-tesla-t4", "T4"),
        ("nvidia-a100-80gb", "A100-80GB"),
        ("nvidia-h100-mega-80gb", "H100-MEGA-80GB"),
        ("a10g", "A10G"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA_GeForce_RTX_4090", "RTX-4090"),
        ("Tesla-V100-SXM2-16GB", "V100-16GB"),
        ("A100-80G", "A100-80GB"),
        ("a100-80gib", "A100-80GB"),
        ("  h200  ", "H200"),
        ("NVIDIA", ""),
    ],
    ids=[
        "gfd-a100-sxm4-80gb",
        "gfd-a100-pcie-40gb",
        "gfd-tesla-t4",
        "gfd-h100-hbm3",
        "gfd-h100-nvl",
        "gke-tesla-t4",
        "gke-a100-80gb",
        "gke-h100-mega",
        "karpenter-a10g",
        "spaces",
        "underscores-and-geforce",
        "gfd-v100-sxm2",
        "memory-suffix-g",
        "memory-suffix-gib",
        "surrounding-whitespace",
        "vendor-only",
    ],
)
def test_product_names_normalise_across_label_sources(raw: str, canonical: str) -> None:
    assert normalise_product(raw) == canonical


@pytest.mark.parametrize(
    ("product", "memory_mib", "result"),
    [
        ("A100", 81920, "A100-80GB"),
        ("A100", 40960, "A100-40GB"),
        ("H100", 81559, "H100-80GB"),
        ("A100-40GB", 81920, "A100-40GB"),
        ("T4", None, "T4"),
        ("T4", 0, "T4"),
    ],
    ids=["adds-80gb", "adds-40gb", "rounds-mib", "keeps-existing-token", "no-label", "zero"],
)
def test_the_memory_label_adds_a_gb_token_only_when_the_name_lacks_one(
    product: str, memory_mib: int | None, result: str
) -> None:
    assert with_memory(product, memory_mib) == result


@pytest.mark.parametrize(
    ("pattern", "product", "matches"),
    [
        ("A100", "A100-80GB", True),
        ("A100", "A100-40GB", True),
        ("A100-80GB", "A100-80GB", True),
        ("A100-80GB", "A100-40GB", False),
        ("A100-80GB", "A100", False),
        ("A10", "A100", False),
        ("A10", "A10G", False),
        ("H100", "H100-NVL-94GB", True),
        ("L40", "L40S", False),
    ],
    ids=[
        "family-matches-80gb",
        "family-matches-40gb",
        "exact",
        "other-memory",
        "pattern-more-specific",
        "a10-is-not-a100",
        "a10-is-not-a10g",
        "extra-tokens-ok",
        "l40-is-not-l40s",
    ],
)
def test_a_pattern_matches_its_family_and_requires_all_its_tokens(
    pattern: str, product: str, matches: bool
) -> None:
    assert pattern_matches(pattern, product) is matches


def test_a_longer_pattern_is_more_specific() -> None:
    assert specificity("A100-80GB") > specificity("A100")
    assert has_memory_token("H100-80GB")
    assert not has_memory_token("H100-NVL")
