"""The policy document as admins write it (YAML), validated field by field.

apiVersion gpuclass.example.io/v1alpha1, kind GpuClassPolicy. Field names are camelCase in
YAML; unknown fields are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

API_VERSION = "gpuclass.example.io/v1alpha1"
KIND = "GpuClassPolicy"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A label key as Kubernetes accepts it: optional DNS-subdomain prefix, then a name.
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)

Mode = Literal["hard", "soft"]
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


ClassNameField = Field(pattern=DNS_LABEL, max_length=63)
LabelKeyField = Field(pattern=LABEL_KEY, max_length=317)


class GpuClassSpec(_Model):
    """One tier of GPUs; its position in `gpuClasses` is its rank (first = highest)."""

    name: str = ClassNameField
    products: tuple[str, ...] = ()
    description: str = ""


class NodeClassification(_Model):
    """How a node's GPU class is derived from the labels it already carries."""

    class_label: str | None = Field(default=None, pattern=LABEL_KEY)
    product_labels: tuple[str, ...] = (
        "nvidia.com/gpu.product",
        "cloud.google.com/gke-accelerator",
        "karpenter.k8s.aws/instance-gpu-name",
    )
    memory_label: str = "nvidia.com/gpu.memory"
    instance_type_label: str = "node.kubernetes.io/instance-type"
    instance_types: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    on_conflict: Literal["derived", "explicit"] = "derived"


class AttributeRequirement(_Model):
    """A requirement on a node label, with the node-affinity operators."""

    key: str = LabelKeyField
    operator: Operator
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> AttributeRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        if self.operator in ("Gt", "Lt"):
            if len(self.values) != 1:
                raise ValueError(f"operator {self.operator} needs exactly one integer value")
            try:
                int(self.values[0])
            except ValueError:
                raise ValueError(
                    f"operator {self.operator} needs an integer value, got {self.values[0]!r}"
                ) from None
        return self


class Separation(_Model):
    """Which workload classes this one keeps away from, and how strictly."""

    avoid: tuple[str, ...] = ()
    mode: Literal["hard", "soft", "off"] = "soft"
    topology_key: str = Field(default="kubernetes.io/hostname", pattern=LABEL_KEY)


class WorkloadClassSpec(_Model):
    """Defaults for pods of one workload class; pods may override the GPU-class wishes."""

    required_classes: tuple[str, ...] | None = None
    min_class: str | None = None
    excluded_classes: tuple[str, ...] = ()
    preferred_classes: tuple[str, ...] = ()
    gpu_attributes: tuple[AttributeRequirement, ...] = ()
    separation: Separation = Separation()
    packing: Literal["pack", "spread"] = "pack"


class WorkloadClassification(_Model):
    """How a pod's workload class is found: label, then priorityClassName, then owner kind."""

    label: str | None = Field(default=None, pattern=LABEL_KEY)
    default: str = ClassNameField
    priority_class_names: dict[str, str] = Field(default_factory=dict)
    owner_kinds: dict[str, str] = Field(
        default_factory=lambda: {"Job": "batch", "CronJob": "batch"}
    )


class DedicatedClass(_Model):
    gpu_class: str = Field(alias="class")
    workload: str
    mode: Mode = "hard"


class Dedication(_Model):
    """Nodes (by label) or whole classes reserved for one workload class."""

    node_label: str | None = Field(default=None, pattern=LABEL_KEY)
    mode_label: str | None = Field(default=None, pattern=LABEL_KEY)
    default_mode: Mode = "hard"
    classes: tuple[DedicatedClass, ...] = ()


class Headroom(_Model):
    """A share of a class's GPUs kept free for the listed workload classes."""

    gpu_class: str = Field(alias="class")
    reserve: float = Field(ge=0.0, lt=1.0)
    for_workloads: tuple[str, ...] = Field(alias="for", min_length=1)
    mode: Mode = "soft"


class Weights(_Model):
    class_fit: float = Field(default=4.0, ge=0)
    separation: float = Field(default=3.0, ge=0)
    headroom: float = Field(default=2.0, ge=0)
    dedication: float = Field(default=2.0, ge=0)
    packing: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> Weights:
        total = self.class_fit + self.separation + self.headroom + self.dedication + self.packing
        if total <= 0:
            raise ValueError("at least one weight must be positive")
        return self


class PolicyDocument(_Model):
    api_version: Literal["gpuclass.example.io/v1alpha1"]
    kind: Literal["GpuClassPolicy"]
    label_prefix: str = Field(
        default="gpuclass.example.io/",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/$",
    )
    gpu_resource: str = Field(default="nvidia.com/gpu", pattern=LABEL_KEY)
    gpu_classes: tuple[GpuClassSpec, ...] = Field(min_length=1)
    node_classification: NodeClassification = NodeClassification()
    workload_classification: WorkloadClassification
    workload_classes: dict[str, WorkloadClassSpec] = Field(min_length=1)
    dedicated: Dedication = Dedication()
    headroom: tuple[Headroom, ...] = ()
    weights: Weights = Weights()

    @field_validator("workload_classes")
    @classmethod
    def _workload_names_are_dns_labels(
        cls, value: dict[str, WorkloadClassSpec]
    ) -> dict[str, WorkloadClassSpec]:
        import re

        bad = [name for name in value if not re.match(DNS_LABEL, name) or len(name) > 63]
        if bad:
            raise ValueError(f"workload class names must be DNS labels, got {bad}")
        return value
