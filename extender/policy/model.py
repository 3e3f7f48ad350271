"""The policy document as admins write it (YAML), validated field by field.

apiVersion gpuclass.example.io/v1alpha1, kind GpuClassPolicy. Field names are camelCase in
YAML; unknown fields are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator
from pydantic.alias_generators import to_camel

from extender.wire.placement import parse_go_int

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
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,  # field docstrings feed the generated reference
    )


ClassNameField = Field(pattern=DNS_LABEL, max_length=63)
LabelKeyField = Field(pattern=LABEL_KEY, max_length=317)


class GpuClassSpec(_Model):
    """One tier of GPUs; its position in `gpuClasses` is its rank (first = highest)."""

    name: str = ClassNameField
    """Class name (a DNS label), used in pod annotations, reasons and metrics."""
    products: tuple[str, ...] = ()
    """GPU products in this class, matched after normalisation: `A100` matches every A100,
    `A100-80GB` only the 80 GB ones (memory within 10%); the most specific match wins."""
    description: str = ""
    """Free text for admins."""


class NodeClassification(_Model):
    """How a node's GPU class is derived from the labels it already carries."""

    class_label: str | None = Field(default=None, pattern=LABEL_KEY)
    """Node label naming the class explicitly; default `<labelPrefix>class`."""
    product_labels: tuple[str, ...] = (
        "nvidia.com/gpu.product",
        "cloud.google.com/gke-accelerator",
        "karpenter.k8s.aws/instance-gpu-name",
    )
    """Labels read for the GPU product, in order; the first one present is used."""
    memory_label: str = Field(default="nvidia.com/gpu.memory", pattern=LABEL_KEY)
    """Label with GPU memory in MiB per GPU (GPU Feature Discovery's); adds a memory token
    when the product name has none. `gpuAttributes` on this key read the node's GPU memory
    from the best source present: this label, `memoryFallbackLabels`, the product name,
    `productMemory` or the built-in catalogue."""
    memory_fallback_labels: tuple[str, ...] = ("karpenter.k8s.aws/instance-gpu-memory",)
    """Labels read in order for the GPU memory (MiB per GPU) when `memoryLabel` is absent:
    Karpenter sets its own on the nodes it creates, before GFD has run."""
    count_label: str = Field(default="nvidia.com/gpu.count", pattern=LABEL_KEY)
    """Label with the node's GPU count (GPU Feature Discovery's). `gpuAttributes` on this
    key read the count from the best source present: this label, `countFallbackLabels`,
    or the node's allocatable GPUs."""
    count_fallback_labels: tuple[str, ...] = ("karpenter.k8s.aws/instance-gpu-count",)
    """Labels read in order for the GPU count when `countLabel` is absent."""
    product_memory: dict[str, PositiveInt] = Field(default_factory=dict)
    """Product -> GB per GPU, for products the built-in catalogue lacks or sizes otherwise
    (`A100: 80` on a fleet of 80 GB A100s that no label sizes); patterns as in `products`."""
    instance_type_label: str = "node.kubernetes.io/instance-type"
    """Label read when no product label is present, looked up in `instanceTypes`."""
    instance_types: dict[str, str] = Field(default_factory=dict)
    """Instance type -> GPU product, e.g. `p5.48xlarge: H100-80GB`."""
    aliases: dict[str, str] = Field(default_factory=dict)
    """Normalised product -> product to use instead, for names the rules do not reduce."""
    on_conflict: Literal["derived", "explicit"] = "derived"
    """When the explicit label and the derived class disagree: `derived` trusts the
    hardware labels, `explicit` the admin's label. Either way it is reported."""


class AttributeRequirement(_Model):
    """A requirement on a node label, with the node-affinity operators."""

    key: str = LabelKeyField
    """Node label, e.g. `nvidia.com/gpu.memory`."""
    operator: Operator
    """`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt` or `Lt`, as in node affinity."""
    values: tuple[str, ...] = ()
    """Values for In/NotIn (one or more), one integer for Gt/Lt, none otherwise."""

    @model_validator(mode="after")
    def _values_fit_operator(self) -> AttributeRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        if self.operator in ("Gt", "Lt"):
            if len(self.values) != 1:
                raise ValueError(f"operator {self.operator} needs exactly one integer value")
            if parse_go_int(self.values[0]) is None:
                raise ValueError(
                    f"operator {self.operator} needs a decimal integer value (as Kubernetes "
                    f"parses it: digits, an optional sign, 64 bits), got {self.values[0]!r}"
                )
        return self


class Separation(_Model):
    """Which workload classes this one keeps away from, and how strictly."""

    avoid: tuple[str, ...] = ()
    """Workload classes whose pods this class keeps away from."""
    mode: Literal["hard", "soft", "off"] = "soft"
    """`soft`: a domain with avoided pods scores at most half, less the more GPUs they
    hold; `hard`: refuse such domains
    (symmetric: their pods are refused here too); `off`: ignore."""
    topology_key: str = Field(default="kubernetes.io/hostname", pattern=LABEL_KEY)
    """Domain of separation: node (`kubernetes.io/hostname`), rack or zone label."""

    @field_validator("mode", mode="before")
    @classmethod
    def _bare_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false: take it as the word the admin wrote.
        return "off" if value is False else value


class WorkloadClassSpec(_Model):
    """Defaults for pods of one workload class; pods may override the GPU-class wishes."""

    required_classes: tuple[str, ...] | None = None
    """Classes the pods may use (unset: any)."""
    min_class: str | None = None
    """Lowest tier the pods accept."""
    excluded_classes: tuple[str, ...] = ()
    """Classes the pods refuse."""
    preferred_classes: tuple[str, ...] = ()
    """Preference order for scoring; the first scores best."""
    gpu_attributes: tuple[AttributeRequirement, ...] = ()
    """Requirements on node labels (hard)."""
    separation: Separation = Separation()
    """Which workload classes to keep away from."""
    packing: Literal["pack", "spread", "fragmentation"] = "pack"
    """`pack`: fullest node first; `spread`: emptiest first, and away from the pod's own
    replicas (pods of its controller, e.g. its ReplicaSet: a node holding c of them scores
    its free share divided by c + 1); `fragmentation`: the node where the pod leaves the
    least free GPU capacity the cluster's typical pods could not use (FGD, USENIX ATC'23)."""


class WorkloadClassification(_Model):
    """How a pod's workload class is found: label, then priorityClassName, then owner kind."""

    label: str | None = Field(default=None, pattern=LABEL_KEY)
    """Pod label naming the workload class; default `<labelPrefix>workload`."""
    default: str = ClassNameField
    """Workload class of pods nothing else classifies."""
    priority_class_names: dict[str, str] = Field(default_factory=dict)
    """priorityClassName -> workload class."""
    owner_kinds: dict[str, str] = Field(
        default_factory=lambda: {"Job": "batch", "CronJob": "batch"}
    )
    """Owner kind (from ownerReferences) -> workload class."""


class DedicatedClass(_Model):
    gpu_class: str = Field(alias="class")
    """GPU class whose nodes are dedicated."""
    workload: str
    """Workload class they are reserved for."""
    mode: Mode = "hard"
    """`hard`: others are refused; `soft`: others score lower."""


class Dedication(_Model):
    """Nodes (by label) or whole classes reserved for one workload class."""

    node_label: str | None = Field(default=None, pattern=LABEL_KEY)
    """Node label naming the workload class a node is reserved for; default
    `<labelPrefix>dedicated`."""
    mode_label: str | None = Field(default=None, pattern=LABEL_KEY)
    """Node label with `hard` or `soft`; default `<labelPrefix>dedicated-mode`."""
    default_mode: Mode = "hard"
    """Mode of a dedicated node without the mode label."""
    classes: tuple[DedicatedClass, ...] = ()
    """Whole classes reserved for a workload class."""


class Headroom(_Model):
    """A share of a class's GPUs kept free for the listed workload classes."""

    gpu_class: str = Field(alias="class")
    """GPU class whose GPUs are partly reserved."""
    reserve: float = Field(ge=0.0, lt=1.0)
    """Share of the class's GPUs (0 to <1) other workloads must leave free."""
    for_workloads: tuple[str, ...] = Field(alias="for", min_length=1)
    """Workload classes that may use the reserve."""
    mode: Mode = "soft"
    """`hard`: filter; `soft`: score."""


class Weights(_Model):
    class_fit: float = Field(default=4.0, ge=0)
    """Weight of the node's class against the pod's preferred classes."""
    separation: float = Field(default=3.0, ge=0)
    """Weight of distance from avoided workload classes."""
    headroom: float = Field(default=2.0, ge=0)
    """Weight of keeping class reserves free (soft headroom)."""
    dedication: float = Field(default=2.0, ge=0)
    """Weight of avoiding nodes soft-dedicated to other workloads."""
    packing: float = Field(default=1.0, ge=0)
    """Weight of the workload class's pack/spread preference."""

    @model_validator(mode="after")
    def _not_all_zero(self) -> Weights:
        total = self.class_fit + self.separation + self.headroom + self.dedication + self.packing
        if total <= 0:
            raise ValueError("at least one weight must be positive")
        return self


class Scoring(_Model):
    """How a node's weighted mean of components (0..1) becomes the integer 0..10 the
    scheduler multiplies by the extender's weight."""

    mode: Literal["absolute", "relative"] = "absolute"
    """`absolute`: the mean x 10, rounded; `relative`: the best node of the request scores
    10, and a node one point less for each `step` its mean lies below the best's (0 at ten
    steps), so that small differences (spread, a GPU of packing) survive the scheduler's
    own scores, and so do the small gradients of the components (tier distance, preference
    order), which then decide."""
    step: float = Field(default=0.01, gt=0, le=0.1)
    """`relative`: how much of the weighted mean one point of the wire is worth."""


class PolicyDocument(_Model):
    """The whole policy: GPU classes, how nodes and pods are classified, and the rules."""

    api_version: Literal["gpuclass.example.io/v1alpha1"]
    """`gpuclass.example.io/v1alpha1`."""
    kind: Literal["GpuClassPolicy"]
    """`GpuClassPolicy`."""
    label_prefix: str = Field(
        default="gpuclass.example.io/",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/$",
    )
    """Prefix of every label and annotation the extender reads; ends with `/`."""
    gpu_resource: str = Field(default="nvidia.com/gpu", pattern=LABEL_KEY)
    """Extended resource that counts GPUs."""
    gpu_classes: tuple[GpuClassSpec, ...] = Field(min_length=1)
    """GPU classes, highest tier first."""
    node_classification: NodeClassification = NodeClassification()
    """How a node's class is derived."""
    workload_classification: WorkloadClassification
    """How a pod's workload class is found."""
    workload_classes: dict[str, WorkloadClassSpec] = Field(min_length=1)
    """Workload class name -> its defaults."""
    dedicated: Dedication = Dedication()
    """Nodes and classes reserved for a workload class."""
    headroom: tuple[Headroom, ...] = ()
    """Shares of classes kept free for some workload classes."""
    weights: Weights = Weights()
    """Weights of the score components."""
    scoring: Scoring = Scoring()
    """How the weighted mean becomes the wire's integer 0..10."""

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
