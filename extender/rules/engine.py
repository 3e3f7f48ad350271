"""Run the filter and score rules over a request's nodes; the one code path for every verb.

The server, `explain` and (later) the simulator all call these functions, so a decision
shown to an admin is the decision the scheduler got.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from operator import add, attrgetter, is_
from typing import TypeVar

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules import (
    class_fit,
    class_required,
    dedicated_node,
    gpu_attributes,
    gpu_fit,
    packing,
    premium_headroom,
    separation,
)
from extender.rules.base import ClusterView, Reject
from extender.state.features import NodeFeatures
from extender.wire.codec import encode_grouped_filter_result, encode_names

FilterCheck = Callable[[PodIntent, NodeFeatures, ClusterView, Policy], Reject | None]
ScoreFn = Callable[[PodIntent, NodeFeatures, ClusterView, Policy], float]
AppliesFn = Callable[[PodIntent, Sequence[NodeFeatures], Policy], bool]

# Unresolvable rules first: their reason is the one an admin needs (wrong GPU model beats
# "GPUs busy"), and preemption skips those nodes.
FILTERS: tuple[tuple[str, FilterCheck], ...] = (
    (class_required.NAME, class_required.check),
    (gpu_attributes.NAME, gpu_attributes.check),
    (dedicated_node.NAME, dedicated_node.check),
    (separation.NAME, separation.check),
    (premium_headroom.NAME, premium_headroom.check),
    (gpu_fit.NAME, gpu_fit.check),
)
# Component name (as in the policy's weights) -> (applies to this pod?, score in [0, 1]).
SCORES: dict[str, tuple[AppliesFn, ScoreFn]] = {
    "class_fit": (class_fit.applies, class_fit.score),
    "separation": (separation.applies, separation.score),
    "headroom": (premium_headroom.applies, premium_headroom.score),
    "dedication": (dedicated_node.applies, dedicated_node.score),
    "packing": (packing.applies, packing.score),
}
MAX_SCORE = 10
NOT_CACHED = Reject("cache", "node not yet in the extender's cache; retrying", True)

NodeLookup = Callable[[str], NodeFeatures | None]
_V = TypeVar("_V")
_K = TypeVar("_K", bound=Hashable)


@dataclass(slots=True)
class FilterResult:
    """Which nodes passed, and why the others did not.

    Decided per group of nodes alike; everything per node is built when asked for: the
    simulator reads `passed`, the server the answer encoded a group at a time (`encoded`).
    """

    # One node of each group that passed: what holds class-wide facts about `passed`.
    passed_groups: list[NodeFeatures]
    _grouped: _Grouped
    _verdicts: dict[Hashable | None, Reject | None]
    _passed: list[str] | None = None
    _rejects: dict[str, Reject] | None = None
    _by_kind: dict[bool, dict[str, str]] | None = None  # resolvable? -> node -> reason

    @property
    def passed(self) -> list[str]:
        """The nodes that passed, in the grouping's order: the request's, or that of an
        earlier request naming the same nodes (kube-scheduler's order changes per pod)."""
        if self._passed is None:
            passes = {key: reject is None for key, reject in self._verdicts.items()}
            self._passed = list(
                compress(self._grouped.names, map(passes.__getitem__, self._grouped.keys))
            )
        return self._passed

    @property
    def passed_count(self) -> int:
        """How many nodes passed (from the groups' sizes: no pass over the nodes)."""
        if self._passed is not None:
            return len(self._passed)
        sizes = self._grouped.sizes()
        return sum(sizes.get(key, 0) for key, reject in self._verdicts.items() if reject is None)

    def encoded(self) -> bytes:
        """The names-mode answer (ExtenderFilterResult), built from each group's names
        encoded once per grouping: no Python object per node."""
        grouped, names_of = self._grouped, self._grouped.names_of()
        passed: list[list[bytes]] = []
        failed: list[tuple[list[bytes], str]] = []
        unresolvable: list[tuple[list[bytes], str]] = []
        for key, reject in self._verdicts.items():
            if key not in names_of:  # (the verdict for nodes not cached, when none is)
                continue
            if reject is None:
                passed.append(grouped.encoded(key))
            else:
                (failed if reject.resolvable else unresolvable).append(
                    (grouped.encoded(key), reject.reason)
                )
        return encode_grouped_filter_result(passed, failed, unresolvable)

    @property
    def failed(self) -> dict[str, str]:
        """Node -> reason, for nodes a change in the cluster could admit."""
        return self._reasons(resolvable=True)

    @property
    def unresolvable(self) -> dict[str, str]:
        """Node -> reason, for nodes nothing short of a change to the pod or node admits."""
        return self._reasons(resolvable=False)

    @property
    def reject_counts(self) -> dict[Reject, int]:
        """How many of the request's nodes each reject applied to."""
        sizes = self._grouped.sizes()
        counts: Counter[Reject] = Counter()
        for key, reject in self._verdicts.items():
            if reject is not None and key in sizes:
                counts[reject] += sizes[key]
        return counts

    @property
    def rejects(self) -> dict[str, Reject]:
        """Node name -> its reject (built once)."""
        if self._rejects is None:
            per_node = _per_node(self._grouped, self._verdicts)
            self._rejects = dict(
                zip(compress(self._grouped.names, per_node), filter(None, per_node), strict=True)
            )
        return self._rejects

    def _reasons(self, resolvable: bool) -> dict[str, str]:
        if self._by_kind is None:
            self._by_kind = self._split_reasons()
        return self._by_kind[resolvable]

    def _split_reasons(self) -> dict[bool, dict[str, str]]:
        kinds = {r.resolvable for r in self._verdicts.values() if r is not None}
        rejects = self.rejects
        if len(kinds) < 2:  # every reject is of one kind: no test per node
            reasons = dict(zip(rejects, map(_REASON, rejects.values()), strict=True))
            return {kind: reasons if kind in kinds else {} for kind in (True, False)}
        split: dict[bool, dict[str, str]] = {True: {}, False: {}}
        for name, reject in rejects.items():  # one pass over the rejected nodes, not two
            split[reject.resolvable][name] = reject.reason
        return split


_REASON = attrgetter("reason")


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    """One node's decision: rejected (and why) or scored (and from what)."""

    node: str
    reject: Reject | None
    components: dict[str, float]
    score: int


def check_node(
    pod: PodIntent, node: NodeFeatures | None, cluster: ClusterView, policy: Policy
) -> Reject | None:
    """The first rule that rejects the node, or None when it may take the pod."""
    if not pod.wants_gpus:
        return None  # not a GPU pod: none of our business, whatever its labels say
    if pod.conflicts:
        return Reject("pod", f"pod cannot be placed: {'; '.join(pod.conflicts)}", False)
    if node is None:
        return NOT_CACHED
    for _, check in FILTERS:
        reject = check(pod, node, cluster, policy)
        if reject is not None:
            return reject
    return None


ShapeOf = Callable[[str], Hashable | None]
_MISSING = object()
# Applicable components -> a small int: cheap to hash in memo keys.
_SIGNATURES: dict[tuple[str, ...], int] = {}
_MAX_MEMO_ENTRIES = 50_000


def _intent_key(pod: PodIntent, policy: Policy) -> Hashable:
    """What of a pod the rules read: equal keys get equal verdicts on equal shapes."""
    key = (
        pod.workload,
        pod.demand,
        pod.allowed,
        pod.preferred,
        pod.attributes,
        pod.tolerates_dedicated,
        pod.conflicts,
        pod.wants_gpus,
        # Only fragmentation reads the pod's CPU: elsewhere pods differing in it share verdicts.
        pod.cpu_milli if policy.reads_cpu else None,
    )
    # Headroom subtracts the pod's own in-flight hold, looked up by uid.
    return (*key, pod.uid) if policy.headroom else key


_Own = tuple[Hashable | None, int]
"""(group, replicas): the nodes of a group holding that many replicas of the pod's
controller, scored as a group of their own."""


@dataclass(slots=True)
class _Replicas:
    """A request's nodes in own groups, each named by an int code (group index x stride +
    replicas): ints are not tracked by the garbage collector, and a tuple per node of
    15,000 set off its full collections, over every object of the cache."""

    codes: list[int]  # per node, in request order
    owns: dict[int, _Own]  # code -> its own group
    members: dict[int, str]  # code with replicas -> one node of it, passing our filter


def _replica_nodes(pod: PodIntent, cluster: ClusterView, policy: Policy) -> Mapping[str, int]:
    """Node -> replicas of the pod's controller there, when its packing spreads them."""
    if not pod.owner or not pod.demand.gpus or policy.workloads[pod.workload].packing != "spread":
        return {}
    return cluster.replicas_of(pod.owner)


class _Rules:
    """One pod's verdicts and component scores per group of nodes.

    Memoised across calls when the groups are a cache's interned shapes (`memoise`): the
    cache empties the memo when a cluster-wide fact a rule reads changes. Nodes holding
    replicas of a spreading pod's controller differ from their group in what packing
    reads: groups are scored as if the pod had no controller, and such nodes in groups of
    their own, by shape and replica count (`replicas_among`).
    """

    def __init__(self, pod: PodIntent, cluster: ClusterView, policy: Policy, memoise: bool):
        self.pod, self.cluster, self.policy = pod, cluster, policy
        self.replicas = _replica_nodes(pod, cluster, policy)
        self.shared = replace(pod, owner="") if self.replicas else pod
        self.memo = cluster.rule_memo(_intent_key(pod, policy)) if memoise else None
        if self.memo is not None and len(self.memo) > _MAX_MEMO_ENTRIES:
            self.memo.clear()
        self.components: list[tuple[str, float, ScoreFn]] = []

    def check(self, key: Hashable, node: NodeFeatures) -> Reject | None:
        if self.memo is None:
            return check_node(self.shared, node, self.cluster, self.policy)
        verdict = self.memo.get(key, _MISSING)
        if verdict is _MISSING:
            verdict = self.memo[key] = check_node(self.shared, node, self.cluster, self.policy)
        return verdict  # type: ignore[return-value]

    def part(self, key: Hashable, node: NodeFeatures, component: str, score: ScoreFn) -> float:
        return self._scored((key, component), self.shared, node, score)

    def own_part(self, own: _Own, node: NodeFeatures, component: str, score: ScoreFn) -> float:
        """A component with the pod's controller counted: memoised by shape and count,
        which is all that the controller changes (packing: spread)."""
        return self._scored((own, component), self.pod, node, score)

    def _scored(
        self, memo_key: Hashable, pod: PodIntent, node: NodeFeatures, score: ScoreFn
    ) -> float:
        if self.memo is None:
            return score(pod, node, self.cluster, self.policy)
        value = self.memo.get(memo_key, _MISSING)
        if value is _MISSING:
            value = self.memo[memo_key] = score(pod, node, self.cluster, self.policy)
        return value  # type: ignore[return-value]

    def parts(
        self, key: Hashable, node: NodeFeatures, components: list[tuple[str, float, ScoreFn]]
    ) -> dict[str, float]:
        return {c: self.part(key, node, c, score) for c, _, score in components}

    def verdicts(self, grouped: _Grouped) -> dict[Hashable | None, Reject | None]:
        members = grouped.members
        verdicts: dict[Hashable | None, object]
        if self.memo is None:
            verdicts = {key: self.check(key, node) for key, node in members.items()}
        else:
            # Look every group up in C; run the rules in Python only for the misses.
            verdicts = _memo_lookup(self.memo, members)
            for key in _missing(verdicts):
                verdicts[key] = self.check(key, members[key])
        verdicts[None] = check_node(self.pod, None, self.cluster, self.policy)
        return verdicts  # type: ignore[return-value]

    def totals(
        self, grouped: _Grouped, verdicts: dict[Hashable | None, Reject | None]
    ) -> dict[Hashable | None, float]:
        """Per group: the weighted mean (0..10) of the components that apply, REJECTED for
        groups our filter rejects."""
        members = grouped.members
        passing = dict(
            compress(members.items(), map(is_, map(verdicts.__getitem__, members), repeat(None)))
        )
        components = applicable_components(self.pod, list(passing.values()), self.policy)
        self.components = components  # what node_means scores the own groups with
        weights = {c: w for c, w, _ in components}
        totals: dict[Hashable | None, float] = dict.fromkeys(members, REJECTED)
        totals[None] = REJECTED
        memo = self.memo
        if memo is None:
            for key, node in passing.items():
                totals[key] = weighted_mean(self.parts(key, node, components), weights)
            return totals
        # Which components apply depends on the candidates, so a memoised total is keyed
        # by them besides the shape.
        signature = _SIGNATURES.setdefault(tuple(weights), len(_SIGNATURES))
        memo_keys = dict(zip(zip(passing, repeat(signature), strict=False), passing, strict=True))
        found = _memo_lookup(memo, memo_keys)
        for memo_key in _missing(found):
            key = memo_key[0]  # type: ignore[index]
            found[memo_key] = memo[memo_key] = weighted_mean(
                self.parts(key, passing[key], components), weights
            )
        totals.update(zip(passing, found.values(), strict=True))  # type: ignore[arg-type]
        return totals

    def replicas_among(
        self, grouped: _Grouped, verdicts: dict[Hashable | None, Reject | None]
    ) -> _Replicas | None:
        """The request's nodes in own groups, when the pod's controller has replicas (C-level
        passes only: a large Deployment has replicas on most nodes)."""
        if not self.replicas:
            return None
        # Kept on the grouping, which serves the next requests while no node changes
        # shape; a replica's coming or going reshapes its node.
        kept = grouped.replicas
        if kept is None or kept[0] != self.pod.owner:
            kept = grouped.replicas = (self.pod.owner, _replica_codes(grouped, self.replicas))
        codes, owns, one_of_each = kept[1]
        members = {
            code: name
            for code, name in one_of_each.items()
            if owns[code][1] and verdicts[owns[code][0]] is None
        }
        return _Replicas(codes, owns, members)

    def replica_parts(
        self,
        found: _Replicas,
        lookup: NodeLookup,
        components: list[tuple[str, float, ScoreFn]],
    ) -> dict[int, dict[str, float]]:
        """The components of each own group with replicas, by code."""
        parts = {}
        for code, name in found.members.items():
            node = lookup(name)
            if node is not None:
                own = found.owns[code]
                parts[code] = {c: self.own_part(own, node, c, score) for c, _, score in components}
        return parts

    def node_means(
        self,
        grouped: _Grouped,
        verdicts: dict[Hashable | None, Reject | None],
        lookup: NodeLookup,
    ) -> tuple[Mapping[Hashable | None, float], Sequence[Hashable | None]]:
        """The weighted means by group (or own group) and each node's group, in request
        order; REJECTED for groups our filter rejects."""
        means = self.totals(grouped, verdicts)
        found = self.replicas_among(grouped, verdicts)
        if found is None:
            return means, grouped.keys
        weights = {c: w for c, w, _ in self.components}
        parts = self.replica_parts(found, lookup, self.components)
        own = {k: weighted_mean(p, weights) for k, p in parts.items()}
        return {
            code: own.get(code, REJECTED) if replicas else means[group]
            for code, (group, replicas) in found.owns.items()
        }, found.codes


_Codes = tuple[list[int], dict[int, _Own], dict[int, str]]


def _replica_codes(grouped: _Grouped, replicas: Mapping[str, int]) -> _Codes:
    """Per node its code (group index x stride + replicas there); per code its own group
    and one node of it. C-level passes only: a large Deployment has replicas on most
    nodes."""
    counts = list(map(replicas.get, grouped.names, repeat(0)))
    stride = max(counts) + 1
    groups = list(dict.fromkeys(grouped.keys))
    first_code = {key: i * stride for i, key in enumerate(groups)}
    codes = list(map(add, map(first_code.__getitem__, grouped.keys), counts))
    one_of_each = dict(zip(codes, grouped.names, strict=True))
    owns = {code: (groups[code // stride], code % stride) for code in one_of_each}
    return codes, owns, one_of_each


def _memo_lookup(
    memo: dict[Hashable, object], keys: Collection[Hashable]
) -> dict[Hashable, object]:
    """key -> its memoised value, or _MISSING; in C-level passes."""
    return dict(zip(keys, map(memo.get, keys, repeat(_MISSING)), strict=True))


def _missing(found: Mapping[Hashable | None, object]) -> list[Hashable | None]:
    return list(compress(found, map(is_, found.values(), repeat(_MISSING))))


@dataclass(slots=True)
class _Grouped:
    """A request's nodes grouped by shape: rules run once per group, not once per node.

    Built with C-level passes only (dict, zip, map): at 15,000 nodes per request a
    Python-level loop per node costs more than all the rules together. The names of each
    group, and their JSON, are built once per grouping when an answer needs them, and a
    grouping brought up to date (_regroup) moves only the names that changed group.
    """

    names: list[str]  # unique, in request order
    keys: list[Hashable | None]  # per name: its group, None when the node is not cached
    members: dict[Hashable, NodeFeatures]  # group -> one node of it
    uncached: bool  # some node is not in the cache (its key is None)
    _names_of: dict[Hashable | None, list[str]] | None = None
    _encoded: dict[Hashable | None, list[bytes]] = field(default_factory=dict)
    # A controller and the nodes' codes for it (_Rules.replicas_among).
    replicas: tuple[str, _Codes] | None = None

    def names_of(self) -> dict[Hashable | None, list[str]]:
        """Group -> its names."""
        if self._names_of is None:
            names_of: dict[Hashable | None, list[str]] = {}
            for name, key in zip(self.names, self.keys, strict=True):
                group = names_of.get(key)
                if group is None:
                    names_of[key] = [name]
                else:
                    group.append(name)
            self._names_of = names_of
        return self._names_of

    def sizes(self) -> dict[Hashable | None, int]:
        """Group -> how many of the request's nodes it holds."""
        if self._names_of is None:
            return Counter(self.keys)
        return {key: len(names) for key, names in self._names_of.items()}

    def encoded(self, key: Hashable | None) -> list[bytes]:
        """The group's names as JSON strings."""
        if key is None:  # nodes not cached: maybe names a caller invented, not kept
            return encode_names(self.names_of()[None], remember=False)
        found = self._encoded.get(key)
        if found is None:
            found = self._encoded[key] = encode_names(self.names_of()[key])
        return found


def _shape_key(node: NodeFeatures | None) -> Hashable | None:
    # Features built outside a cache have no shape: such a node is a group of its own.
    return None if node is None else (node.shape or id(node))


def _group(names: Sequence[str], lookup: NodeLookup, shape_of: ShapeOf | None) -> _Grouped:
    if shape_of is None:

        def shape_of(name: str) -> Hashable | None:
            return _shape_key(lookup(name))

    # One dict both drops duplicate names (the protocol forbids them in answers) and maps
    # each name to its group.
    group_of = dict(zip(names, map(shape_of, names), strict=True))
    return _grouped(list(group_of), list(group_of.values()), lookup)


def _grouped(names: list[str], keys: list[Hashable | None], lookup: NodeLookup) -> _Grouped:
    one_of_each = dict(zip(keys, names, strict=True))
    uncached = one_of_each.pop(None, None) is not None
    members = dict(zip(one_of_each, map(lookup, one_of_each.values()), strict=True))
    return _Grouped(names, keys, members, uncached)  # type: ignore[arg-type]


# Below this many nodes grouping costs less than checking whether it can be reused.
_GROUPING_MEMO_MIN_NODES = 64
# Groupings kept: a pod's filter names every node, its prioritize those that passed, which
# differ by workload class; one each for a few classes.
_GROUPING_MEMOS = 4


@dataclass(slots=True)
class _GroupingMemo:
    generation: int
    names: Sequence[str]
    grouped: _Grouped
    index: dict[str, int] | None = None  # name -> position in grouped.names, once needed
    node_set: frozenset[str] | None = None  # once a request names them in another order

    def holds_exactly(self, asked: set[str], count: int) -> bool:
        """Whether the `count` names of a request, `asked` as a set, are this grouping's
        nodes in another order (the sizes rule out a request that repeats a name and
        leaves one out)."""
        if self.node_set is None:
            self.node_set = frozenset(self.names)
        return len(self.node_set) == count == len(asked) and self.node_set == asked


def _group_in(
    names: Sequence[str], lookup: NodeLookup, shape_of: ShapeOf | None, cluster: ClusterView
) -> _Grouped:
    """_group, reusing a recent grouping of the same nodes: as it was when no node's shape
    changed since, else with the nodes that changed looked up again. Every bind reshapes a
    node, so between two requests a few nodes of thousands have usually changed."""
    if shape_of is None or len(names) < _GROUPING_MEMO_MIN_NODES:
        return _group(names, lookup, shape_of)
    generation = cluster.shape_generation
    memos: list[_GroupingMemo] = (
        cluster.grouping_memo if isinstance(cluster.grouping_memo, list) else []
    )
    # kube-scheduler checks nodes in parallel and sends those that passed in the order
    # they finished: another order for every pod, the same nodes while none changed.
    asked: set[str] | None = None
    for i, memo in enumerate(memos):
        if len(memo.names) != len(names):
            continue
        if memo.names != names:
            asked = set(names) if asked is None else asked
            if not memo.holds_exactly(asked, len(names)):
                continue
        del memos[i]
        if memo.generation != generation:
            changed = cluster.shape_changes_since(memo.generation)
            if changed is None or len(changed) > len(names) // 8:
                break  # cheaper, or only possible, to group again
            memo.grouped = _regroup(memo, changed, lookup, shape_of)
            memo.generation = generation
        memos.insert(0, memo)
        return memo.grouped
    grouped = _group(names, lookup, shape_of)
    if grouped.uncached:
        # Kept groupings serve the scheduler's next requests, which name nodes our watch
        # brought. One naming nodes the cache does not know (one it has not seen yet, or
        # thousands of made-up names) is not kept: under `make fuzz`, groupings of 20,000
        # made-up names grew RSS past its bound (docs/reliability.md).
        return grouped
    # A copy (of pointers only; the grouping's own when no name repeats): a caller may
    # reuse its list with other nodes.
    kept = grouped.names if len(grouped.names) == len(names) else list(names)
    memos.insert(0, _GroupingMemo(generation, kept, grouped))
    del memos[_GROUPING_MEMOS:]
    cluster.grouping_memo = memos
    return grouped


def _regroup(
    memo: _GroupingMemo, changed: Sequence[str], lookup: NodeLookup, shape_of: ShapeOf
) -> _Grouped:
    """The memo's grouping with the shapes of `changed` looked up again (a new _Grouped: a
    FilterResult of an earlier request may still read the old one)."""
    old = memo.grouped
    if memo.index is None:
        memo.index = {name: i for i, name in enumerate(old.names)}
    index, keys = memo.index, list(old.keys)
    moved: list[tuple[str, Hashable | None, Hashable | None]] = []
    for name in changed:
        i = index.get(name)
        if i is not None:
            key = shape_of(name)
            if key != keys[i]:
                moved.append((name, keys[i], key))
                keys[i] = key
    grouped = _grouped(old.names, keys, lookup)
    if old._names_of is not None:
        _move(old, grouped, moved)
    return grouped


def _move(
    old: _Grouped, new: _Grouped, moved: list[tuple[str, Hashable | None, Hashable | None]]
) -> None:
    """Give `new` the names of `old`'s groups with `moved` names in their new groups; the
    groups they left or joined are copied first (`old` may still be read), and lose their
    JSON."""
    assert old._names_of is not None
    names_of = dict(old._names_of)
    copied: set[Hashable | None] = set()
    for name, before, after in moved:
        for key in (before, after):
            if key not in copied:
                names_of[key] = list(names_of.get(key, ()))
                copied.add(key)
        names_of[before].remove(name)
        names_of[after].append(name)
    for key in copied:
        if not names_of[key]:
            del names_of[key]
    new._names_of = names_of
    new._encoded = {key: value for key, value in old._encoded.items() if key not in copied}


def _per_node(grouped: _Grouped, value_of: Mapping[Hashable | None, _V]) -> list[_V]:
    return list(map(value_of.__getitem__, grouped.keys))


def filter_nodes(
    pod: PodIntent,
    names: Sequence[str],
    lookup: NodeLookup,
    cluster: ClusterView,
    policy: Policy,
    shape_of: ShapeOf | None = None,
) -> FilterResult:
    """Split nodes into passed, failed (resolvable) and unresolvable, with reasons.

    `shape_of` (name -> the node's interned shape) lets a cache skip one look-up per node.
    """
    grouped = _group_in(names, lookup, shape_of, cluster)
    verdicts = _Rules(pod, cluster, policy, shape_of is not None).verdicts(grouped)
    return _filter_result(grouped, verdicts)


def _filter_result(
    grouped: _Grouped, verdicts: dict[Hashable | None, Reject | None]
) -> FilterResult:
    return FilterResult(
        passed_groups=[n for k, n in grouped.members.items() if verdicts[k] is None],
        _grouped=grouped,
        _verdicts=verdicts,
    )


def applicable_components(
    pod: PodIntent, nodes: Sequence[NodeFeatures], policy: Policy
) -> list[tuple[str, float, ScoreFn]]:
    """The components that rank these nodes for this pod, with their weights."""
    if pod.conflicts:
        return []
    if pod.demand.gpus == 0:
        # A pod without GPUs matters to GPU placement only through the CPU it takes from
        # GPU nodes: fragmentation alone scores it (packing.score), when its class uses it.
        weight = policy.weights.of(packing.NAME)
        fragmentation = policy.workloads[pod.workload].packing == "fragmentation"
        return [(packing.NAME, weight, packing.score)] if weight > 0 and fragmentation else []
    chosen = []
    for component, (applies, score) in SCORES.items():
        weight = policy.weights.of(component)
        if weight > 0 and applies(pod, nodes, policy):
            chosen.append((component, weight, score))
    return chosen


def weighted_mean(parts: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted mean of components in [0, 1], scaled to 0..10 but not rounded."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(parts[c] * w for c, w in weights.items()) / total * MAX_SCORE


REJECTED = -math.inf
"""The mean of a node our filter rejects: scores 0 and is never the best."""


def wire_scores(means: Mapping[_K, float], policy: Policy) -> dict[_K, int]:
    """The integer 0..10 the scheduler gets for each weighted mean (0..10 scale).

    Relative (`scoring.mode`): the best mean scores 10 and each `scoring.step` below it a
    point less, so that what the components tell apart (a GPU of packing, spread) is not
    rounded away and the scheduler's own scores cannot outweigh it. Absolute: the mean,
    rounded. Rejected nodes score 0.
    """
    step = policy.score_step
    if step is None:
        return {
            k: 0 if v == REJECTED else min(MAX_SCORE, max(0, int(v + 0.5)))
            for k, v in means.items()
        }
    best = max(means.values(), default=REJECTED)
    per_point = step * MAX_SCORE  # means are on the 0..10 scale
    return {
        k: 0 if v == REJECTED else MAX_SCORE - min(MAX_SCORE, int((best - v) / per_point + 0.5))
        for k, v in means.items()
    }


def score_nodes(
    pod: PodIntent,
    names: Sequence[str],
    lookup: NodeLookup,
    cluster: ClusterView,
    policy: Policy,
    shape_of: ShapeOf | None = None,
) -> tuple[list[str], list[int]]:
    """Every requested node (duplicates dropped) and its integer score, as two lists; 0 for
    nodes our filter would reject.

    The scheduler normally sends only nodes that passed our filter; scoring the others 0
    keeps a prioritize-only configuration from ranking a wrong GPU class first. The same
    numbers as explain_nodes, without an explanation per node (this is the hot path).
    """
    grouped = _group_in(names, lookup, shape_of, cluster)
    rules = _Rules(pod, cluster, policy, shape_of is not None)
    verdicts = rules.verdicts(grouped)
    means, keys = rules.node_means(grouped, verdicts, lookup)
    return grouped.names, list(map(wire_scores(means, policy).__getitem__, keys))


def filter_and_score(
    pod: PodIntent,
    names: Sequence[str],
    lookup: NodeLookup,
    cluster: ClusterView,
    policy: Policy,
    shape_of: ShapeOf | None = None,
    exact: bool = False,
) -> tuple[FilterResult, list[int] | list[float]]:
    """filter_nodes, then the scores of the nodes that passed (score_nodes, or with
    `exact` the weighted means before they become the wire's integers): what kube-scheduler
    gets from /filter then /prioritize, in one pass."""
    grouped = _group_in(names, lookup, shape_of, cluster)
    rules = _Rules(pod, cluster, policy, shape_of is not None)
    verdicts = rules.verdicts(grouped)
    result = _filter_result(grouped, verdicts)
    means, keys = rules.node_means(grouped, verdicts, lookup)
    scores = list(map((means if exact else wire_scores(means, policy)).__getitem__, keys))
    # Scores only for the nodes that passed, in request order, as /prioritize would.
    return result, list(compress(scores, map(is_, _per_node(grouped, verdicts), repeat(None))))


def explain_nodes(
    pod: PodIntent,
    names: Sequence[str],
    lookup: NodeLookup,
    cluster: ClusterView,
    policy: Policy,
) -> list[NodeVerdict]:
    """Per node: the reject, or the component scores and the final integer.

    Components are chosen over the nodes that pass, as the scheduler prioritizes only
    those, so an explanation shows the scores the scheduler gets.
    """
    grouped = _group(names, lookup, None)
    rules = _Rules(pod, cluster, policy, memoise=False)
    rejects = rules.verdicts(grouped)
    passing = [node for key, node in grouped.members.items() if rejects[key] is None]
    components = applicable_components(pod, passing, policy)
    weights = {c: w for c, w, _ in components}
    parts_of = {
        key: rules.parts(key, node, components)
        for key, node in grouped.members.items()
        if rejects[key] is None
    }
    keys: Sequence[Hashable | None] = grouped.keys
    found = rules.replicas_among(grouped, rejects)
    if found is not None:
        own_parts = rules.replica_parts(found, lookup, components)
        parts_of = {
            code: own_parts[code] if replicas else parts_of[group]
            for code, (group, replicas) in found.owns.items()
            if rejects[group] is None
        }
        keys = found.codes
    scores = wire_scores({k: weighted_mean(p, weights) for k, p in parts_of.items()}, policy)
    verdicts = []
    for name, group, own in zip(grouped.names, grouped.keys, keys, strict=True):
        reject = rejects[group]
        if reject is not None or group is None:  # rejected, or unknown to a non-GPU pod
            verdicts.append(NodeVerdict(name, reject, {}, 0))
        else:
            verdicts.append(NodeVerdict(name, None, parts_of[own], scores[own]))
    return verdicts
