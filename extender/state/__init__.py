"""Layer 3: the cluster as the rules see it, kept current by List-Watch."""

from extender.state.cache import ClassUsage, ClusterCache, DomainUsage, PodRecord
from extender.state.devices import pick_devices
from extender.state.features import HOSTNAME_KEY, NodeFeatures, node_features

__all__ = [
    "HOSTNAME_KEY",
    "ClassUsage",
    "ClusterCache",
    "DomainUsage",
    "NodeFeatures",
    "PodRecord",
    "node_features",
    "pick_devices",
]
