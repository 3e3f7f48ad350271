"""The scheduling models `simulate` compares, by name.

- `default`: the default kube-scheduler profile alone;
- `default+extender`: the default profile calling our extender, with the extender weight
  our manifests ship;
- `extender-profile`: the profile our second-scheduler manifests recommend, read from its
  KubeSchedulerConfiguration (which in-tree scores it keeps, their weights, our weight);
- `extender-profile-exact`: the same without rounding our score to the wire's 0..10
  integers (impossible in a real cluster; it measures what the rounding costs);
- the FGD paper's reference policies, as validated against its published results;
- `fgd+wishes`: FGD held to our policy's preferred classes and separation, at the price
  the policy's weights set (`bounds.py`): what those wishes cost the best packer, the
  bound for our models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from extender.errors import ExtenderError
from extender.policy.compiled import Policy
from extender.simulate.bounds import FgdWishes
from extender.simulate.cluster import Cluster
from extender.simulate.extender_model import ExtenderProfile, ExtenderScheduler
from extender.simulate.kube_scheduler import (
    DEFAULT_WEIGHTS,
    GPU,
    DefaultScheduler,
    FitStrategy,
    InTreeWeights,
)
from extender.simulate.protocol import Scheduler
from extender.simulate.reference import POLICY_NAMES, reference_policy
from extender.simulate.trace import PodTable

SECOND_SCHEDULER_CONFIG = (
    Path(__file__).resolve().parents[2] / "manifests" / "second-scheduler" / "scheduler-config.yaml"
)
OUR_MODELS = ("default", "default+extender", "extender-profile", "extender-profile-exact")
REFERENCE_MODELS = tuple(name.lower() for name in POLICY_NAMES)
BOUND_MODELS = ("fgd+wishes",)
MODEL_NAMES = (*OUR_MODELS, *REFERENCE_MODELS, *BOUND_MODELS)

ModelFactory = Callable[[Cluster, PodTable, np.random.Generator], Scheduler]


class ProfileError(ExtenderError):
    """A scheduler configuration the model cannot represent."""


@dataclass(frozen=True, slots=True)
class SchedulerProfile:
    """What a KubeSchedulerConfiguration says about scoring, for the model."""

    in_tree: InTreeWeights
    extender_weight: int
    managed: frozenset[str] | None = None


_FIT = "NodeResourcesFit"
_BALANCED = "NodeResourcesBalancedAllocation"
_DEFAULT_SCORE_WEIGHTS = {_FIT: DEFAULT_WEIGHTS.fit, _BALANCED: DEFAULT_WEIGHTS.balanced_allocation}


def profile_from_config(path: Path, gpu_resource: str) -> SchedulerProfile:
    """Score plugins, NodeResourcesFit's strategy and our weight from the first profile."""
    try:
        document: Any = yaml.safe_load(path.read_text())
        profile = document["profiles"][0]
        extenders = document.get("extenders") or []
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise ProfileError(
            f"{path}: not a KubeSchedulerConfiguration with a profile: {exc}"
        ) from exc
    score = (profile.get("plugins") or {}).get("score") or {}
    weights = dict(_DEFAULT_SCORE_WEIGHTS)
    for entry in score.get("disabled") or []:
        if entry.get("name") == "*":
            weights = dict.fromkeys(weights, 0)
        elif entry.get("name") in weights:
            weights[entry["name"]] = 0
    for entry in score.get("enabled") or []:
        if entry.get("name") in weights:
            weights[entry["name"]] = int(entry.get("weight") or 1)
    strategy: FitStrategy = "LeastAllocated"
    resources = DEFAULT_WEIGHTS.fit_resources
    for plugin in profile.get("pluginConfig") or []:
        if plugin.get("name") != _FIT:
            continue
        scoring = (plugin.get("args") or {}).get("scoringStrategy") or {}
        kind = scoring.get("type", "LeastAllocated")
        if kind not in ("LeastAllocated", "MostAllocated"):
            raise ProfileError(f"{path}: NodeResourcesFit scoringStrategy {kind} is not modelled")
        strategy = kind
        if scoring.get("resources"):
            resources = tuple(
                (_resource(r["name"], gpu_resource, path), int(r.get("weight", 1)))
                for r in scoring["resources"]
            )
    weight = int(extenders[0].get("weight", 1)) if extenders else 0
    listed = (extenders[0].get("managedResources") or []) if extenders else []
    managed = frozenset(_resource(r["name"], gpu_resource, path) for r in listed) or None
    in_tree = InTreeWeights(
        fit=weights[_FIT],
        fit_strategy=strategy,
        fit_resources=resources,
        balanced_allocation=weights[_BALANCED],
    )
    return SchedulerProfile(in_tree, weight, managed)


def _resource(name: str, gpu_resource: str, path: Path) -> str:
    if name in ("cpu", "memory"):
        return name
    if name == gpu_resource:
        return GPU
    raise ProfileError(f"{path}: scoring resource {name} is not modelled (cpu, memory, GPU)")


def model_factory(
    name: str, policy: Policy, config: Path = SECOND_SCHEDULER_CONFIG
) -> ModelFactory:
    """A factory building the named model for one run."""
    if name in REFERENCE_MODELS:
        return reference_policy(POLICY_NAMES[REFERENCE_MODELS.index(name)])
    if name == "default":
        return lambda cluster, trace, rng: DefaultScheduler()
    if name == "fgd+wishes":
        return lambda cluster, trace, rng: FgdWishes(
            cluster, trace, policy, rng.permutation(len(cluster)).astype(np.int64)
        )
    if name not in OUR_MODELS:
        raise ProfileError(f"unknown model {name!r} (known: {', '.join(MODEL_NAMES)})")
    shipped = profile_from_config(config, policy.gpu_resource)
    if name == "default+extender":
        profile = ExtenderProfile(name, weight=shipped.extender_weight, managed=shipped.managed)
    else:
        profile = ExtenderProfile(
            name,
            weight=shipped.extender_weight,
            in_tree=shipped.in_tree,
            exact=name.endswith("-exact"),
            managed=shipped.managed,
        )
    return lambda cluster, trace, rng: ExtenderScheduler(cluster, policy, profile)
