"""extender/v1 bodies: strict decoding with precise errors, responses in the exact wire shape."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import extender.wire
from extender.errors import WireError
from extender.wire import (
    ExtenderBindingResult,
    ExtenderFilterResult,
    HostPriority,
    NodeList,
    decode_binding_args,
    decode_extender_args,
    decode_node,
    encode_binding_result,
    encode_filter_result,
    encode_priorities,
)
from extender.wire.codec import encode_grouped_filter_result, encode_names
from tests.builders import node_dict, pod_dict


def _body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _names_body(**keys: Any) -> bytes:
    return _body({"Pod": pod_dict("p", 2), "Nodes": None, "NodeNames": ["a", "b"], **keys})


def test_every_public_name_of_the_wire_layer_is_importable() -> None:
    for name in extender.wire.__all__:
        assert getattr(extender.wire, name) is not None


# ---- ExtenderArgs ------------------------------------------------------------------------


def test_names_mode_with_exact_keys_decodes_pod_and_names() -> None:
    args = decode_extender_args(_names_body())
    assert args.Pod is not None
    assert args.Pod.metadata.name == "p"
    assert args.Pod.spec.containers is not None
    resources = args.Pod.spec.containers[0].resources
    assert resources is not None
    assert resources.limits == {"nvidia.com/gpu": "2"}
    assert args.NodeNames == ["a", "b"]
    assert args.Nodes is None


def test_full_mode_with_exact_keys_decodes_a_node_list() -> None:
    nodes = {"metadata": {}, "items": [node_dict("a"), node_dict("b", "T4", 4)]}
    args = decode_extender_args(_body({"Pod": pod_dict(), "Nodes": nodes, "NodeNames": None}))
    assert args.NodeNames is None
    assert args.Nodes is not None
    assert args.Nodes.items is not None
    assert [decode_node(raw, i).metadata.name for i, raw in enumerate(args.Nodes.items)] == [
        "a",
        "b",
    ]


@pytest.mark.parametrize(
    "keys",
    [("pod", "nodes", "nodenames"), ("POD", "NODES", "NODENAMES"), ("pOd", "nOdes", "nodeNames")],
    ids=["lower", "upper", "mixed"],
)
def test_top_level_keys_are_matched_case_insensitively_like_go(keys: tuple[str, ...]) -> None:
    pod_key, nodes_key, names_key = keys
    names = decode_extender_args(_body({pod_key: pod_dict("p"), nodes_key: None, names_key: ["a"]}))
    assert names.Pod is not None
    assert names.Pod.metadata.name == "p"
    assert names.NodeNames == ["a"]
    full = decode_extender_args(
        _body({pod_key: pod_dict("p"), nodes_key: {"items": [node_dict("a")]}, names_key: None})
    )
    assert full.Nodes is not None
    assert full.Nodes.items is not None
    assert len(full.Nodes.items) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"Pod": pod_dict("p"), "nodenames": ["a"]},
        {"pod": pod_dict("p"), "NodeNames": ["a"]},
        {"pod": pod_dict("p"), "Nodes": None, "NodeNames": ["a"]},
    ],
    ids=["exact-pod-lower-names", "lower-pod-exact-names", "lower-pod-exact-null-nodes"],
)
def test_a_mix_of_exact_and_other_spellings_decodes_too(body: dict[str, Any]) -> None:
    args = decode_extender_args(_body(body))
    assert args.Pod is not None
    assert args.Pod.metadata.name == "p"
    assert args.NodeNames == ["a"]


def test_unknown_top_level_keys_are_ignored_as_go_does() -> None:
    args = decode_extender_args(_names_body(NodeNameToVictims=None, Extra={"x": 1}))
    assert args.NodeNames == ["a", "b"]


def test_unknown_fields_inside_the_pod_are_ignored() -> None:
    pod = pod_dict("p")
    pod["spec"]["tolerations"] = [{"operator": "Exists"}]
    pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False"}]
    args = decode_extender_args(_body({"Pod": pod, "Nodes": None, "NodeNames": []}))
    assert args.Pod is not None
    assert args.NodeNames == []


@pytest.mark.parametrize(
    "body",
    [
        {"Nodes": None, "NodeNames": ["a"]},
        {"Pod": None, "Nodes": None, "NodeNames": ["a"]},
        {"pod": None, "NodeNames": ["a"]},
    ],
    ids=["absent", "null", "lower-null"],
)
def test_a_missing_pod_is_a_wire_error_naming_pod(body: dict[str, Any]) -> None:
    with pytest.raises(WireError, match=r"'Pod' is missing or null"):
        decode_extender_args(_body(body))


@pytest.mark.parametrize(
    "body",
    [
        {"Pod": {}, "Nodes": None, "NodeNames": None},
        {"Pod": {}},
        {"Pod": {}, "Nodes": {"metadata": {}, "items": None}, "NodeNames": None},
        {"Pod": {}, "Nodes": {"metadata": {}}, "NodeNames": None},
    ],
    ids=["both-null", "both-absent", "items-null", "items-absent"],
)
def test_no_nodes_in_either_field_is_a_wire_error_naming_both(body: dict[str, Any]) -> None:
    with pytest.raises(WireError) as caught:
        decode_extender_args(_body(body))
    message = str(caught.value)
    assert "'NodeNames'" in message
    assert "'Nodes.items'" in message
    assert "nodeCacheCapable" in message


WRONG_TYPES: list[tuple[str, bytes, str]] = [
    ("names-a-string", b'{"Pod": {}, "Nodes": null, "NodeNames": "node-a"}', "$.NodeNames"),
    ("names-of-ints", b'{"Pod": {}, "Nodes": null, "NodeNames": [1, 2]}', "$.NodeNames[0]"),
    ("pod-a-list", b'{"Pod": [], "Nodes": null, "NodeNames": ["a"]}', "$.Pod"),
    ("pod-a-string", b'{"Pod": "p", "Nodes": null, "NodeNames": ["a"]}', "$.Pod"),
    ("nodes-a-list", b'{"Pod": {}, "Nodes": [], "NodeNames": null}', "$.Nodes"),
    ("items-a-string", b'{"Pod": {}, "Nodes": {"items": "x"}, "NodeNames": null}', "$.Nodes.items"),
    (
        "pod-name-an-int",
        b'{"Pod": {"metadata": {"name": 5}}, "NodeNames": ["a"]}',
        "$.Pod.metadata.name",
    ),
    (
        "labels-a-list",
        b'{"Pod": {"metadata": {"labels": ["a"]}}, "NodeNames": ["a"]}',
        "$.Pod.metadata.labels",
    ),
    (
        "containers-an-object",
        b'{"Pod": {"spec": {"containers": {}}}, "NodeNames": ["a"]}',
        "$.Pod.spec.containers",
    ),
]


@pytest.mark.parametrize(
    ("body", "where"), [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES]
)
def test_a_wrong_type_is_a_wire_error_naming_the_field(body: bytes, where: str) -> None:
    with pytest.raises(WireError) as caught:
        decode_extender_args(body)
    message = str(caught.value)
    assert message.startswith("ExtenderArgs: ")
    assert f"at `{where}`" in message
    assert "Expected" in message


@pytest.mark.parametrize("body", [b"[]", b"null", b'"Pod"', b"42", b"true"])
def test_a_body_that_is_not_an_object_is_a_wire_error(body: bytes) -> None:
    with pytest.raises(WireError, match=r"ExtenderArgs: Expected `object`"):
        decode_extender_args(body)


MALFORMED = [b"{", b'{"Pod": }', b"{'Pod': {}}", b'{"Pod": {}} x', b"\xff\xfe", b"not json", b"  "]


@pytest.mark.parametrize("body", MALFORMED, ids=[repr(b) for b in MALFORMED])
def test_malformed_json_is_a_wire_error_saying_so(body: bytes) -> None:
    with pytest.raises(WireError, match=r"^ExtenderArgs: malformed JSON: "):
        decode_extender_args(body)


def test_an_empty_body_is_a_wire_error_saying_so() -> None:
    with pytest.raises(WireError, match=r"^ExtenderArgs: empty body, expected a JSON object$"):
        decode_extender_args(b"")


def test_a_node_item_without_a_name_is_a_wire_error_with_its_index() -> None:
    nameless: dict[str, Any] = {"metadata": {"labels": {}}, "spec": {}, "status": {}}
    body = _body({"Pod": {}, "Nodes": {"items": [node_dict("a"), nameless]}, "NodeNames": None})
    args = decode_extender_args(body)
    assert args.Nodes is not None
    assert args.Nodes.items is not None
    with pytest.raises(
        WireError, match=r"^ExtenderArgs\.Nodes\.items\[1\]: metadata\.name is empty$"
    ):
        decode_node(args.Nodes.items[1], 1)


def test_a_node_item_of_the_wrong_type_is_a_wire_error_with_its_index() -> None:
    args = decode_extender_args(b'{"Pod": {}, "Nodes": {"items": ["node-a"]}, "NodeNames": null}')
    assert args.Nodes is not None
    assert args.Nodes.items is not None
    with pytest.raises(WireError, match=r"^ExtenderArgs\.Nodes\.items\[0\]: Expected `object`"):
        decode_node(args.Nodes.items[0], 0)


# ---- node items stay raw -----------------------------------------------------------------


def _odd_node(name: str) -> dict[str, Any]:
    node = node_dict(name)
    node["metadata"]["managedFields"] = [{"manager": "kubelet", "operation": "Update"}]
    node["status"]["images"] = [{"names": ["nvcr.io/nvidia/cuda:12.4"], "sizeBytes": 4096}]
    node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": 10250}}
    node["status"]["nodeInfo"] = {"kubeletVersion": "v1.31.2", "architecture": "amd64"}
    return node


def test_node_items_are_kept_raw_byte_for_byte() -> None:
    # Unusual but valid formatting: spacing, key order and escapes must all survive.
    items = [
        json.dumps(_odd_node("a"), indent=1),
        json.dumps(_odd_node("b\u00e9"), ensure_ascii=True, separators=(",", ":")),
        '{ "status" : {}, "metadata" : { "name" : "c" } , "x": 1.50}',
    ]
    body = (
        '{"Pod": {}, "Nodes": {"metadata": {}, "items": ['
        + ",  ".join(items)
        + ']}, "NodeNames": null}'
    ).encode()
    args = decode_extender_args(body)
    assert args.Nodes is not None
    assert args.Nodes.items is not None
    assert [bytes(raw) for raw in args.Nodes.items] == [item.encode() for item in items]


def test_raw_node_items_are_echoed_byte_for_byte_in_a_filter_result() -> None:
    item = json.dumps(_odd_node("a"), indent=2, sort_keys=True)
    args = decode_extender_args(
        ('{"Pod": {}, "Nodes": {"metadata": {}, "items": [' + item + "]}}").encode()
    )
    assert args.Nodes is not None
    assert args.Nodes.items is not None
    encoded = encode_filter_result(
        ExtenderFilterResult(
            NodeNames=None,
            Nodes=NodeList(items=list(args.Nodes.items)),
            FailedNodes={},
            FailedAndUnresolvableNodes={},
        )
    )
    assert item.encode() in encoded
    answer = json.loads(encoded)
    assert answer["Nodes"] == {"metadata": {}, "items": [_odd_node("a")]}
    kubelet = answer["Nodes"]["items"][0]["status"]["daemonEndpoints"]["kubeletEndpoint"]
    assert kubelet == {"Port": 10250}


# ---- responses ---------------------------------------------------------------------------


def test_a_names_mode_filter_result_has_exactly_the_protocol_keys() -> None:
    encoded = encode_filter_result(
        ExtenderFilterResult(
            NodeNames=["a"],
            Nodes=None,
            FailedNodes={"b": "busy"},
            FailedAndUnresolvableNodes={"c": "wrong class"},
        )
    )
    assert json.loads(encoded) == {
        "NodeNames": ["a"],
        "Nodes": None,
        "FailedNodes": {"b": "busy"},
        "FailedAndUnresolvableNodes": {"c": "wrong class"},
        "Error": "",
    }


def test_priorities_encode_as_an_array_of_host_and_int_score_leaving_zeros_out() -> None:
    encoded = encode_priorities(["a", "b", "c"], [10, 0, 3])
    assert encoded == b'[{"Host":"a","Score":10},{"Host":"c","Score":3}]'
    assert encode_priorities(["a", "b"], [0, 0]) == b"[]"
    assert encode_priorities([], []) == b"[]"


@given(
    st.lists(st.text(), unique=True, max_size=20),
    st.data(),
)
def test_priorities_encode_as_msgspec_encodes_the_nonzero_structs(
    names: list[str], data: Any
) -> None:
    scores = data.draw(st.lists(st.integers(0, 10), min_size=len(names), max_size=len(names)))
    expected = msgspec.json.encode(
        [HostPriority(n, s) for n, s in zip(names, scores, strict=True) if s != 0]
    )
    # Twice: the second answer is joined from the remembered JSON of each name.
    assert encode_priorities(names, scores) == expected
    assert encode_priorities(names, scores) == expected


def test_a_binding_result_has_only_the_error_key() -> None:
    assert encode_binding_result(ExtenderBindingResult()) == b'{"Error":""}'
    assert json.loads(encode_binding_result(ExtenderBindingResult("boom"))) == {"Error": "boom"}


# ---- ExtenderBindingArgs -----------------------------------------------------------------

BIND = {"PodName": "p", "PodNamespace": "ml", "PodUID": "u-1", "Node": "gpu-a"}


def test_binding_args_with_exact_keys_decode() -> None:
    args = decode_binding_args(_body(BIND))
    assert (args.PodName, args.PodNamespace, args.PodUID, args.Node) == ("p", "ml", "u-1", "gpu-a")


@pytest.mark.parametrize("case", [str.lower, str.upper], ids=["lower", "upper"])
def test_binding_args_keys_are_matched_case_insensitively(case: Any) -> None:
    args = decode_binding_args(_body({case(k): v for k, v in BIND.items()}))
    assert args == decode_binding_args(_body(BIND))


def test_binding_args_with_one_key_spelled_differently_decode() -> None:
    body = {**BIND}
    body["podnamespace"] = body.pop("PodNamespace")
    assert decode_binding_args(_body(body)) == decode_binding_args(_body(BIND))


@pytest.mark.parametrize(
    ("dropped", "named"),
    [
        (("PodUID",), "PodUID"),
        (("Node",), "Node"),
        (("PodName", "PodNamespace"), "PodName, PodNamespace"),
        (tuple(BIND), "PodName, PodNamespace, PodUID, Node"),
    ],
    ids=["uid", "node", "name-and-namespace", "all"],
)
def test_missing_binding_fields_are_named(dropped: tuple[str, ...], named: str) -> None:
    body = {k: v for k, v in BIND.items() if k not in dropped}
    with pytest.raises(WireError) as caught:
        decode_binding_args(_body(body))
    assert str(caught.value) == f"ExtenderBindingArgs: missing or empty {named}"


def test_an_empty_binding_field_counts_as_missing() -> None:
    with pytest.raises(WireError, match=r"missing or empty Node$"):
        decode_binding_args(_body({**BIND, "Node": ""}))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", r"^ExtenderBindingArgs: empty body"),
        (b"{", r"^ExtenderBindingArgs: malformed JSON: "),
        (b"[]", r"^ExtenderBindingArgs: Expected `object`"),
        (b'{"PodName": 5}', r"at `\$\.PodName`"),
    ],
    ids=["empty", "malformed", "array", "wrong-type"],
)
def test_bad_binding_bodies_are_wire_errors(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode_binding_args(body)


def test_raw_items_are_msgspec_raw_values() -> None:
    args = decode_extender_args(b'{"Pod": {}, "Nodes": {"items": [{"metadata": {"name": "a"}}]}}')
    assert args.Nodes is not None
    assert args.Nodes.items is not None
    assert isinstance(args.Nodes.items[0], msgspec.Raw)


_GROUP_NAMES = st.lists(
    st.one_of(st.sampled_from([",", '","', '"', "\\", "a,"]), st.text(min_size=1, max_size=8)),
    min_size=1,
    max_size=4,
)
_REASONS = st.sampled_from(["busy", 'say "no", "twice"', "50% full", "a\\b", "ünïcode"])


@given(
    st.lists(_GROUP_NAMES, max_size=3),
    st.lists(st.tuples(_GROUP_NAMES, _REASONS), max_size=3),
    st.lists(st.tuples(_GROUP_NAMES, _REASONS), max_size=3),
)
def test_a_filter_answer_encoded_a_group_at_a_time_is_the_answer_encoded_whole(
    passed: list[list[str]],
    failed: list[tuple[list[str], str]],
    unresolvable: list[tuple[list[str], str]],
) -> None:
    # Names with quotes, commas (`,` alone encodes as `","`) and backslashes stay whole.
    every = [n for g in passed for n in g] + [n for g, _ in [*failed, *unresolvable] for n in g]
    assume(len(every) == len(set(every)))  # a request's names are unique once grouped
    whole = encode_filter_result(
        ExtenderFilterResult(
            NodeNames=[name for group in passed for name in group],
            Nodes=None,
            FailedNodes={name: reason for group, reason in failed for name in group},
            FailedAndUnresolvableNodes={
                name: reason for group, reason in unresolvable for name in group
            },
        )
    )

    by_group = encode_grouped_filter_result(
        [encode_names(group) for group in passed],
        [(encode_names(group), reason) for group, reason in failed],
        [(encode_names(group), reason) for group, reason in unresolvable],
    )

    sent = json.loads(by_group)
    assert sent == json.loads(whole)
    reasons = [*sent["FailedNodes"].values(), *sent["FailedAndUnresolvableNodes"].values()]
    assert not any("%" in reason for reason in reasons)  # the scheduler formats them


def test_names_no_cache_knows_are_encoded_but_not_remembered() -> None:
    # A caller inventing node names (a fuzzer: 20,000 per request) must not grow memory.
    invented = [f"invented-{i}" for i in range(100)]
    assert encode_names(invented, remember=False) == [json.dumps(n).encode() for n in invented]
    assert not set(invented) & set(extender.wire.codec._NAME_JSON)
    assert encode_names(["known"]) == [b'"known"']
    assert "known" in extender.wire.codec._NAME_JSON
