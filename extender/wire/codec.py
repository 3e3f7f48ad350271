"""Decode extender requests strictly, encode responses in the exact wire shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress
from typing import Any, TypeVar

import msgspec
import orjson
import yaml

from extender.errors import WireError
from extender.wire.types import (
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    Node,
    Pod,
)

T = TypeVar("T")

# The scheduler's MaxExtenderPriority: an extender's scores are 0..10.
MAX_EXTENDER_PRIORITY = 10

_encoder = msgspec.json.Encoder()
_args_decoder = msgspec.json.Decoder(ExtenderArgs)
_bind_decoder = msgspec.json.Decoder(ExtenderBindingArgs)
_node_decoder = msgspec.json.Decoder(Node)
_pod_decoder = msgspec.json.Decoder(Pod)

# Go's encoding/json matches object keys case-insensitively, so the scheduler would accept
# {"nodenames": [...]}; we accept the same spellings at the top level.
_ARGS_KEYS = {"pod": "Pod", "nodes": "Nodes", "nodenames": "NodeNames"}
_BIND_KEYS = {k.lower(): k for k in ("PodName", "PodNamespace", "PodUID", "Node")}


def decode_as(decoder: msgspec.json.Decoder[T], body: bytes | msgspec.Raw, what: str) -> T:
    """Decode with `decoder`; every failure is a WireError that says where and what."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise WireError(f"{what}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise WireError(f"{what}: malformed JSON: {exc}") from None
    except RecursionError:
        raise WireError(f"{what}: JSON nested too deeply") from None


def _canonical_keys(body: bytes, keys: dict[str, str]) -> bytes | None:
    """Re-spell the top-level keys of a JSON object the way Go would match them, or None."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(raw, dict):
        return None
    canonical: dict[str, Any] = {}
    for key, value in raw.items():
        name = keys.get(key.lower()) if isinstance(key, str) else None
        if name is not None and name not in canonical:
            canonical[name] = value
    return _encoder.encode(canonical) if canonical.keys() != raw.keys() else None


def decode_extender_args(body: bytes) -> ExtenderArgs:
    """The pod and node list of a filter/prioritize call; WireError says what is wrong."""
    if not body:
        raise WireError("ExtenderArgs: empty body, expected a JSON object")
    args = decode_as(_args_decoder, body, "ExtenderArgs")
    if args.Pod is None or (args.Nodes is None and args.NodeNames is None):
        respelled = _canonical_keys(body, _ARGS_KEYS)
        if respelled is not None:
            args = decode_as(_args_decoder, respelled, "ExtenderArgs")
    if args.Pod is None:
        raise WireError("ExtenderArgs: 'Pod' is missing or null, expected a v1.Pod object")
    if args.NodeNames is None and (args.Nodes is None or args.Nodes.items is None):
        raise WireError(
            "ExtenderArgs: both 'NodeNames' and 'Nodes.items' are null, expected node names "
            "(nodeCacheCapable: true) or a NodeList (nodeCacheCapable: false)"
        )
    return args


class _NodeIdentityMeta(msgspec.Struct, frozen=True):
    name: str = ""
    resourceVersion: str = ""


class NodeIdentity(msgspec.Struct, frozen=True):
    """Only what tells a Node object apart: enough to reuse cached features for it."""

    metadata: _NodeIdentityMeta = _NodeIdentityMeta()


_identity_decoder = msgspec.json.Decoder(NodeIdentity)


def decode_node_identity(raw: msgspec.Raw | bytes, index: int) -> tuple[str, str]:
    """(name, resourceVersion) of a raw Node; a full decode skips everything else."""
    node = decode_as(_identity_decoder, raw, f"ExtenderArgs.Nodes.items[{index}]")
    if not node.metadata.name:
        raise WireError(f"ExtenderArgs.Nodes.items[{index}]: metadata.name is empty")
    return node.metadata.name, node.metadata.resourceVersion


def decode_node(raw: msgspec.Raw | bytes, index: int | str) -> Node:
    """A Node: item `index` of a request or listing, or the object a read named `index`."""
    what = index if isinstance(index, str) else f"ExtenderArgs.Nodes.items[{index}]"
    node = decode_as(_node_decoder, raw, what)
    if not node.metadata.name:
        raise WireError(f"{what}: metadata.name is empty")
    return node


def decode_binding_args(body: bytes) -> ExtenderBindingArgs:
    """The pod and target node of a bind call; every field is required."""
    if not body:
        raise WireError("ExtenderBindingArgs: empty body, expected a JSON object")
    args = decode_as(_bind_decoder, body, "ExtenderBindingArgs")
    if not (args.PodName and args.PodNamespace and args.PodUID and args.Node):
        respelled = _canonical_keys(body, _BIND_KEYS)
        if respelled is not None:
            args = decode_as(_bind_decoder, respelled, "ExtenderBindingArgs")
    missing = [f for f in ("PodName", "PodNamespace", "PodUID", "Node") if not getattr(args, f)]
    if missing:
        raise WireError(f"ExtenderBindingArgs: missing or empty {', '.join(missing)}")
    return args


def decode_pod(body: bytes, what: str = "Pod") -> Pod:
    return decode_as(_pod_decoder, body, what)


def scheduler_safe(reason: str) -> str:
    """A reason the scheduler shows verbatim: it passes reasons through a Go format string,
    so `%` would come out as `%!o(MISSING)`."""
    return reason.replace("%", " percent") if "%" in reason else reason


def encode_filter_result(result: ExtenderFilterResult) -> bytes:
    for failures in (result.FailedNodes, result.FailedAndUnresolvableNodes):
        # Nodes share a few reason strings: look at those, not at every node.
        if any("%" in reason for reason in set(failures.values())):
            for node, reason in failures.items():
                failures[node] = scheduler_safe(reason)
    result.Error = scheduler_safe(result.Error)
    return _encoder.encode(result)


# Per node name seen, its JSON pieces: the same nodes come in every request, and an
# answer is joined from these in C-level passes, with no Python object per node.
_NAME_JSON: dict[str, bytes] = {}  # `"<name>"`
_HOST_PREFIXES: dict[str, bytes] = {}  # `{"Host":"<name>","Score":`
_MAX_REMEMBERED = 200_000  # names per table; past this (nodes come and go), start over


def _remembered(
    table: dict[str, bytes], names: Sequence[str], encode: Callable[[str], bytes]
) -> list[bytes]:
    """`encode(name)` per name, taken from `table` or kept there."""
    found = list(map(table.get, names))
    if not all(found):  # (`None in` would compare every bytes object with None)
        if len(table) > _MAX_REMEMBERED:
            table.clear()
        for i, name in enumerate(names):
            if found[i] is None:
                found[i] = table[name] = encode(name)
    return found  # type: ignore[return-value]


def encode_names(names: Sequence[str], remember: bool = True) -> list[bytes]:
    """Each name as a JSON string, remembered per name. Names no cache knows (a caller
    inventing them) are not remembered."""
    if not remember:
        return list(map(_encoder.encode, names))
    return _remembered(_NAME_JSON, names, _encoder.encode)


def encode_grouped_filter_result(
    passed: Sequence[Sequence[bytes]],
    failed: Sequence[tuple[Sequence[bytes], str]],
    unresolvable: Sequence[tuple[Sequence[bytes], str]],
) -> bytes:
    """A names-mode ExtenderFilterResult from its nodes a group at a time: each group's
    names from `encode_names`, with the reason of a rejected group. The same answer as
    `encode_filter_result`'s, joined in C-level passes, with no new object per node.
    """
    return b"".join(
        (
            b'{"NodeNames":[',
            b",".join(b",".join(names) for names in passed),
            b'],"Nodes":null,"FailedNodes":{',
            _reason_entries(failed),
            b'},"FailedAndUnresolvableNodes":{',
            _reason_entries(unresolvable),
            b'},"Error":""}',
        )
    )


def _reason_entries(groups: Sequence[tuple[Sequence[bytes], str]]) -> bytes:
    """`"a":"why","b":"why"` for each group's names and reason."""
    entries = []
    for names, reason in groups:
        value = b":" + _encoder.encode(scheduler_safe(reason))
        entries.append((value + b",").join(names) + value)
    return b",".join(entries)


_SCORE_SUFFIXES = [b"%d}," % score for score in range(MAX_EXTENDER_PRIORITY + 1)]


def encode_priorities(names: Sequence[str], scores: Sequence[int]) -> bytes:
    """The HostPriorityList `[{"Host": name, "Score": score}, ...]`, scores 1..10.

    Nodes scoring 0 are left out: kube-scheduler adds nothing for a host the answer does
    not name, and with relative scores most nodes score 0, so the answer it must parse,
    and we must write, shrinks several times over.
    """
    if 0 in scores:
        names = list(compress(names, scores))
        scores = list(filter(None, scores))
    if not names:
        return b"[]"
    prefixes = _remembered(_HOST_PREFIXES, names, _host_prefix)
    parts: list[bytes | None] = [None] * (2 * len(prefixes))
    parts[0::2] = prefixes
    parts[1::2] = map(_SCORE_SUFFIXES.__getitem__, scores)
    body = b"".join(parts)  # type: ignore[arg-type]
    return b"[" + body[:-1] + b"]"  # the last score's comma becomes the closing bracket


def _host_prefix(name: str) -> bytes:
    return b'{"Host":' + _encoder.encode(name) + b',"Score":'


def encode_binding_result(result: ExtenderBindingResult) -> bytes:
    result.Error = scheduler_safe(result.Error)
    return _encoder.encode(result)


def decode_pod_manifest(body: bytes) -> Pod:
    """A Pod from a manifest a person wrote: JSON, or one YAML document."""
    stripped = body.lstrip()
    if stripped.startswith(b"{"):
        return decode_pod(body, "pod manifest")
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise WireError(f"pod manifest: neither JSON nor YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("kind", "Pod") != "Pod":
        raise WireError("pod manifest: expected a single Pod object")
    try:
        encoded = orjson.dumps(data)
    except orjson.JSONEncodeError as exc:  # e.g. a non-string key such as `1:` or `yes:`
        raise WireError(f"pod manifest: not a JSON-compatible object: {exc}") from None
    return decode_pod(encoded, "pod manifest")
