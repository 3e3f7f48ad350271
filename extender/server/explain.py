"""Explanations of a decision as JSON and as a terminal table (server and CLI share them)."""

from __future__ import annotations

from typing import Any

import orjson

from extender.policy.compiled import Policy
from extender.policy.intent import PodIntent
from extender.rules.engine import NodeVerdict
from extender.rules.notes import recorded_decision
from extender.wire import Pod


def ranked(verdicts: list[NodeVerdict]) -> list[NodeVerdict]:
    """Passing nodes by score (best first), then rejected ones, each by name."""
    return sorted(verdicts, key=lambda v: (v.reject is not None, -v.score, v.node))


def explanation(
    intent: PodIntent, verdicts: list[NodeVerdict], policy: Policy, pod: Pod | None = None
) -> dict[str, Any]:
    """The pod's wishes, and each node's verdict best first; for a pod our bind placed, the
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
            }
            for v in ranked(verdicts)
        ],
    }


def explanation_json(
    intent: PodIntent, verdicts: list[NodeVerdict], policy: Policy, pod: Pod | None = None
) -> bytes:
    return orjson.dumps(explanation(intent, verdicts, policy, pod))


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
    components = sorted({c for n in data["nodes"] for c in n["components"]})
    header = ["NODE", "RESULT", "SCORE", *(c.upper() for c in components), "REASON"]
    rows = [header]
    for n in data["nodes"]:
        result = "pass" if n["passed"] else ("unresolvable" if n["unresolvable"] else "failed")
        rows.append(
            [
                n["node"],
                result,
                str(n["score"]) if n["passed"] else "-",
                *(f"{n['components'][c]:.2f}" if c in n["components"] else "-" for c in components),
                n["reason"] or "",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
