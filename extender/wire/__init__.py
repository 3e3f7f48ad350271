"""Layer 1: the extender/v1 JSON wire protocol as typed values."""

from extender.wire.codec import (
    decode_binding_args,
    decode_extender_args,
    decode_node,
    decode_pod,
    encode_binding_result,
    encode_filter_result,
    encode_priorities,
)
from extender.wire.quantity import QuantityError, milli_units, parse_quantity, whole_units
from extender.wire.types import (
    Container,
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    HostPriority,
    Node,
    NodeList,
    ObjectMeta,
    OwnerReference,
    Pod,
    PodSpec,
    ResourceRequirements,
)

__all__ = [
    "Container",
    "ExtenderArgs",
    "ExtenderBindingArgs",
    "ExtenderBindingResult",
    "ExtenderFilterResult",
    "HostPriority",
    "Node",
    "NodeList",
    "ObjectMeta",
    "OwnerReference",
    "Pod",
    "PodSpec",
    "QuantityError",
    "ResourceRequirements",
    "decode_binding_args",
    "decode_extender_args",
    "decode_node",
    "decode_pod",
    "encode_binding_result",
    "encode_filter_result",
    "encode_priorities",
    "milli_units",
    "parse_quantity",
    "whole_units",
]
