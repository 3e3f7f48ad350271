"""Explanations of a decision as JSON and as a terminal table (server and CLI share them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from extender.policy.compiled import Policy
from extender.policy.gpu_facts import GpuFacts
from extender.policy.intent import PodIntent
from extender.rules.engine import NodeLookup, NodeVerdict
from extender.rules.gpu_attributes import describe
from extender.rules.notes import recorded_decision
from extender.wire import Pod


def ranked(verdicts: list[NodeVerdict]) -> list[NodeVerdict]:
    """Passing nodes by score (best first), then rejected ones, each by name."""
    return sorted(verdicts, key=lambda v: (v.reject is not None, -v.score, v.node))


def gpu_facts_of(verdicts: list[NodeVerdict], lookup: NodeLookup) -> dict[str, GpuFacts]:
    """Each explained node's GPU memory and count as the cache holds them now: frozen
    values, so the explanation can be built off the event loop while the cache changes."""
    found = {}
    for verdict in verdicts:
        node = lookup(verdict.node)
        if node is not None:
            found[verdict.node] = node.gpu_facts
    return found


def _facts(facts: GpuFacts | None) -> dict[str, Any] | None:
    if facts is None:
        return None
    return {
        name: {"value": fact.value, "source": fact.source} if fact is not None else None
        for name, fact in (("memoryMiB", facts.memory_mib), ("count", facts.count))
    }


def explanation(
    intent: PodIntent,
    verdicts: list[NodeVerdict],
    policy: Policy,
    pod: Pod | None = None,
    facts: Mapping[str, GpuFacts] | None = None,
) -> dict[str, Any]:
    """The pod's wishes, and each node's verdict best first, with its GPU memory and count
    and where they were read (`facts`, from gpu_facts_of); for a pod our bind placed, the
    decision it recorded then (`decision`, or None)."""
    return {
        "decision": recorded_decision(pod, policy) if pod is not None else None,
        "pod": intent.key,
        "workload": intent.workload,
        "workloadSource": intent.workload_source,
        "gpus": intent.demand.gpus,
        "milliPerGpu": intent.demand.milli,
        "allowedClasses": intent.allowed_text,
        "preferredClasses": list(intent.preferred),
        "conflicts": list(intent.conflicts),
        "gpuAttributes": [describe(r) for r in intent.attributes],
        "weights": {
            c: policy.weights.of(c)
            for c in ("class_fit", "separation", "headroom", "dedication", "packing")
        },
        "nodes": [
            {
                "node": v.node,
                "passed": v.reject is None,
                "rule": v.reject.rule if v.reject else None,
                "reason": v.reject.reason if v.reject else None,
                "unresolvable": (not v.reject.resolvable) if v.reject else None,
                "components": {c: round(x, 4) for c, x in v.components.items()},
                "score": v.score,
                "gpuFacts": _facts(facts.get(v.node)) if facts is not None else None,
            }
            for v in ranked(verdicts)
        ],
    }


def explanation_json(
    intent: PodIntent,
    verdicts: list[NodeVerdict],
    policy: Policy,
    pod: Pod | None = None,
    facts: Mapping[str, GpuFacts] | None = None,
) -> bytes:
    return orjson.dumps(explanation(intent, verdicts, policy, pod, facts))


def _memory_cell(node: dict[str, Any]) -> str:
    memory = (node.get("gpuFacts") or {}).get("memoryMiB")
    return f"{memory['value']} MiB ({memory['source']})" if memory else "unknown"


def explanation_table(data: dict[str, Any]) -> str:
    """A human-readable table of an explanation (the JSON form, as the server returns it)."""
    lines = [
        f"pod {data['pod']}: workload {data['workload']} ({data['workloadSource']}), "
        f"{data['gpus']} GPU(s) x {data['milliPerGpu']}/1000, allowed: {data['allowedClasses']}, "
        f"preferred: {', '.join(data['preferredClasses']) or '-'}",
    ]
    if data["conflicts"]:
        lines.append("conflicts: " + "; ".join(data["conflicts"]))
    decision = data.get("decision")
    if decision:
        score = f", score {decision['score']}/10" if "score" in decision else ""
        policy = "the policy in force" if decision["policyInForce"] == "yes" else "another policy"
        lines.append(
            f"placed on {decision['node'] or '?'} ({decision['class']}{score}) by our bind under "
            f"{policy} ({decision['policy']}): {decision['reason']}"
        )
        lines.append("as the cluster is now:")
    # The GPU memory column, with its source, only for pods with attribute requirements.
    attributes = data.get("gpuAttributes") or []
    if attributes:
        lines.append("requires: " + "; ".join(attributes))
    components = sorted({c for n in data["nodes"] for c in n["components"]})
    memory = ["GPU MEMORY"] if attributes else []
    header = ["NODE", "RESULT", "SCORE", *(c.upper() for c in components), *memory, "REASON"]
    rows = [header]
    for n in data["nodes"]:
        result = "pass" if n["passed"] else ("unresolvable" if n["unresolvable"] else "failed")
        rows.append(
            [
                n["node"],
                result,
                str(n["score"]) if n["passed"] else "-",
                *(f"{n['components'][c]:.2f}" if c in n["components"] else "-" for c in components),
                *([_memory_cell(n)] if attributes else []),
                n["reason"] or "",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
