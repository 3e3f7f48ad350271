"""A cluster snapshot file (`kubectl get nodes,pods -A -o yaml`) loaded into a cache."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import yaml

from extender.errors import WireError
from extender.policy.compiled import Policy
from extender.state.cache import ClusterCache
from extender.wire.types import Node, Pod


def load_snapshot(path: Path, policy: Policy) -> ClusterCache:
    """A ready cache holding the snapshot's Nodes and Pods (a List or several documents)."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_bytes()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise WireError(f"snapshot {path}: {exc}") from None
    objects: list[dict[str, object]] = []
    for document in documents:
        if isinstance(document, dict) and isinstance(document.get("items"), list):
            objects.extend(o for o in document["items"] if isinstance(o, dict))
        elif isinstance(document, dict):
            objects.append(document)
    nodes: list[Node] = []
    pods: list[Pod] = []
    for i, obj in enumerate(objects):
        kind = obj.get("kind")
        if kind not in ("Node", "Pod"):
            continue
        target = Node if kind == "Node" else Pod
        try:
            decoded = msgspec.json.decode(orjson.dumps(obj), type=target)
        except (msgspec.ValidationError, orjson.JSONEncodeError) as exc:  # e.g. a key `1:`
            raise WireError(f"snapshot {path}: object {i} ({kind}): {exc}") from None
        (nodes if isinstance(decoded, Node) else pods).append(decoded)  # type: ignore[arg-type]
    return ClusterCache.of(policy, nodes, pods)
