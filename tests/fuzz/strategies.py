"""Hypothesis strategies for requests to the extender, built from the wire types.

Each request starts from a well-formed message of the extender protocol (ExtenderArgs with
a Pod and NodeNames or Nodes, ExtenderBindingArgs, a Pod manifest for /debug/explain) and
is then bent the ways a buggy or hostile client bends it: wrong types, missing and extra
keys, lower-case keys, nulls, huge and negative quantities, invalid quantity strings,
unicode, deep nesting, 0 or 20,000 nodes, duplicate and unknown node names. A share of
requests is raw bytes: a random body on a verb, or bytes that are not HTTP at all.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

PREFIX = "gpuclass.example.io/"
GPU = "nvidia.com/gpu"
VERBS = ("/filter", "/prioritize", "/bind", "/debug/explain", "/mutate")
BIG_NODE_COUNT = 20_000
DEPTHS = (10, 100, 600, 5000)


@dataclass(frozen=True)
class FuzzRequest:
    """One request: HTTP (method, path, body) or, when `raw`, bytes sent as they are."""

    kind: str
    method: str = "POST"
    path: str = "/filter"
    body: bytes = b""
    raw: bool = False

    def describe(self) -> str:
        head = self.body[:200]
        return f"{self.kind}: {self.method} {self.path} ({len(self.body)} bytes) {head!r}"


# ---- leaves --------------------------------------------------------------------------------

names = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.text(max_size=40),  # unicode, empty, control characters
    st.sampled_from(["", " ", "..", "a" * 300, "gpu-h100\x00", "ノード", "💥"]),
)
quantities: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        ["1", "2", "8", "0", "500m", "1k", "1Ki", "1e3", "-1", "-500m", "1e308", "9" * 400,
         "1.5.5", "abc", "", " 1", "1 ", "0x10", "NaN", "Infinity", "1E", "--1", "1ee3", "½"]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)  # fmt: skip
annotation_keys = st.sampled_from(
    [f"{PREFIX}{k}" for k in ("required-classes", "preferred-classes", "min-class",
     "excluded-classes", "workload", "gpu-milli", "dedicated")] + ["x", ""]
)  # fmt: skip


# ---- well-formed messages ------------------------------------------------------------------


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if draw(st.booleans()):
        limits[GPU] = draw(quantities)
    if draw(st.booleans()):
        limits["cpu"] = draw(quantities)
    containers = [
        {"name": draw(names), "resources": {"limits": limits, "requests": dict(limits)}}
        for _ in range(draw(st.integers(0, 3)))
    ]
    return {
        "metadata": {
            "name": draw(names),
            "namespace": draw(names),
            "uid": draw(names),
            "labels": draw(st.dictionaries(names, names, max_size=3)),
            "annotations": draw(
                st.dictionaries(annotation_keys, st.one_of(names, quantities), max_size=4)
            ),
            "ownerReferences": [{"kind": draw(names), "name": draw(names), "uid": "u"}],
        },
        "spec": {
            "schedulerName": draw(st.sampled_from(["gpu-scheduler", "default-scheduler", ""])),
            "priorityClassName": draw(names),
            "containers": containers,
            "initContainers": [],
        },
        "status": {"phase": draw(st.sampled_from(["Pending", "Running", "", "Bogus"]))},
    }


@st.composite
def node_objects(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(names)
    gpus = draw(quantities)
    return {
        "metadata": {
            "name": name,
            "resourceVersion": draw(names),
            "labels": {
                "kubernetes.io/hostname": name,
                "nvidia.com/gpu.product": draw(
                    st.sampled_from(["NVIDIA-H100-80GB-HBM3", "T4", ""])
                ),
                **draw(st.dictionaries(names, names, max_size=2)),
            },
        },
        "spec": {"unschedulable": draw(st.booleans())},
        "status": {"allocatable": {GPU: gpus, "cpu": draw(quantities)}, "capacity": {GPU: gpus}},
    }


@st.composite
def binding_args(draw: st.DrawFn, known: list[str]) -> dict[str, Any]:
    return {
        "PodName": draw(names),
        "PodNamespace": draw(names),
        "PodUID": draw(names),
        "Node": draw(st.one_of(st.sampled_from(known), names)),
    }


# ---- the ways a message gets bent ----------------------------------------------------------

_DEEP = "__fuzz_deep_{}__"
# Values of the wrong type for any field; `retype` and `extra` pick from these.
WRONG: tuple[Any, ...] = (
    None, True, 0, -1, 2**63, 2**70, 1.5, -1e308, "", "x", "💥", "\u0000", [], [1, "a"], {},
    {"a": {"b": None}}, [[[]]], "1e308", "-5", "NaN",
)  # fmt: skip


def _deep(depth: int) -> str:
    """A placeholder _encode replaces with `depth` nested arrays (no encoder nests that far)."""
    return _DEEP.format(depth)


def bend(rng: random.Random, message: Any) -> Any:
    """The message with a few random paths dropped, retyped, renamed, nulled or nested."""
    for _ in range(rng.randrange(4)):
        message = _bend_once(rng, message)
    return message


def _bend_once(rng: random.Random, message: Any) -> Any:
    if isinstance(message, list) and message:
        index = rng.randrange(len(message))
        return [*message[:index], _bend_once(rng, message[index]), *message[index + 1 :]]
    if not isinstance(message, dict) or not message:
        return rng.choice(WRONG)
    key = rng.choice(sorted(message, key=str))
    how = rng.choice(["drop", "retype", "lower", "null", "extra", "deep", "recurse", "recurse"])
    bent_message = dict(message)
    if how == "drop":
        del bent_message[key]
    elif how == "retype":
        bent_message[key] = rng.choice(WRONG)
    elif how == "lower":
        bent_message[str(key).lower()] = bent_message.pop(key)
    elif how == "null":
        bent_message[key] = None
    elif how == "extra":
        bent_message[rng.choice(["Extra", "pod", "nodenames", "\u00e9", "metadata"])] = rng.choice(
            WRONG
        )
    elif how == "deep":
        bent_message[key] = _deep(rng.choice(DEPTHS))
    else:
        bent_message[key] = _bend_once(rng, message[key])
    return bent_message


def _encode(message: Any) -> bytes:
    try:
        encoded = orjson.dumps(message)
    except (orjson.JSONEncodeError, TypeError):  # an int beyond 64 bits
        encoded = json.dumps(message).encode()
    for depth in DEPTHS:
        placeholder = f'"{_DEEP.format(depth)}"'.encode()
        if placeholder in encoded:
            encoded = encoded.replace(placeholder, b"[" * depth + b"1" + b"]" * depth)
    return encoded


# ---- requests ------------------------------------------------------------------------------

RAW_NOT_HTTP = (
    b"GET / HTTP/9.9\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on plain HTTP
    b"POST /filter HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST /filter HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /filter HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
    b"POST /filter HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}",
)
KINDS = (
    "filter", "prioritize", "filter", "prioritize", "bind", "explain", "mutate", "body", "raw"
)  # fmt: skip
BATCH = 25
"""Requests built per Hypothesis example: Hypothesis draws the ingredients (a pod, nodes,
names, bytes, a seed), a seeded generator bends them BATCH ways; drawing every request
with Hypothesis alone costs ~12 ms each."""


@st.composite
def requests(draw: st.DrawFn, known: list[str]) -> list[FuzzRequest]:
    """A batch of fuzz requests for a cluster whose nodes are `known`."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    pod = draw(pods())
    nodes = draw(st.lists(node_objects(), max_size=4))
    binding = draw(binding_args(known))
    few_names = draw(st.lists(st.one_of(st.sampled_from(known), names), max_size=20))
    garbage = draw(st.binary(max_size=300))
    text = draw(st.text(max_size=100))
    batch = []
    for _ in range(BATCH):
        kind = rng.choice(KINDS)
        if kind in ("filter", "prioritize"):
            args = {"Pod": pod, "NodeNames": _names(rng, known, few_names), "Nodes": None}
            if rng.randrange(5) == 0:
                args = {"Pod": pod, "NodeNames": None, "Nodes": {"metadata": {}, "items": nodes}}
            batch.append(FuzzRequest(kind, path=f"/{kind}", body=_encode(bend(rng, args))))
        elif kind == "bind":
            batch.append(FuzzRequest(kind, path="/bind", body=_encode(bend(rng, binding))))
        elif kind == "mutate":
            review = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "fuzz",
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "namespace": "fuzz",
                    "operation": "CREATE",
                    "object": pod,
                },
            }
            batch.append(FuzzRequest(kind, path="/mutate", body=_encode(bend(rng, review))))
        elif kind == "explain":
            body = _encode(bend(rng, pod)) if rng.randrange(3) else text.encode()
            batch.append(FuzzRequest(kind, path="/debug/explain", body=body))
        elif kind == "body":
            method = rng.choice(["POST", "POST", "GET", "PUT", "DELETE", "PATCH"])
            path = rng.choice([*VERBS, "/", "/metrics", "/debug/cache", "/x/../filter", "/%zz"])
            cut = garbage[: rng.randrange(len(garbage) + 1)]
            batch.append(FuzzRequest(kind, method=method, path=path, body=cut))
        else:
            data = rng.choice(RAW_NOT_HTTP) if rng.randrange(2) else garbage or b"\x00"
            batch.append(FuzzRequest(kind, body=data, raw=True))
    return batch


def _names(rng: random.Random, known: list[str], few: list[str]) -> list[str]:
    """Names the scheduler might send: the cluster's, unknown ones, duplicates, 0 or 20,000."""
    roll = rng.randrange(100)
    if roll == 0:
        return [f"fuzz-node-{i}" for i in range(BIG_NODE_COUNT)]
    if roll < 10:
        return []
    if roll < 30:
        return few + few
    if roll < 50:
        return list(known)
    return few


def for_each_batch(
    known: list[str], batches: int, seed: int, use: Callable[[list[FuzzRequest]], None]
) -> None:
    """Call `use` with `batches` batches of requests, reproducibly from `seed` (generation
    only: nothing here fails, so Hypothesis never shrinks or replays)."""

    @settings(
        max_examples=batches,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(requests(known))
    def each(batch: list[FuzzRequest]) -> None:
        use(batch)

    each()
