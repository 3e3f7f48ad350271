"""The doctor: what is wrong with a cluster's GPU labels, pods, autoscaler templates and
policy, each with a severity and a fix. Checks read DoctorInputs only, so the CLI (one
listing of a cluster) and the server's read-only endpoint share them."""

from __future__ import annotations

from typing import Any

from extender.doctor import autoscaling, labels, over_constraint, policy_health
from extender.doctor.findings import Finding, report_json, sort_findings
from extender.doctor.inputs import DoctorInputs

CHECKS = (labels.check, over_constraint.check, autoscaling.check, policy_health.check)


def diagnose(inputs: DoctorInputs) -> dict[str, Any]:
    """The report (JSON-ready): a summary of the cluster and every finding, worst first."""
    findings: list[Finding] = list(inputs.notes)
    for check in CHECKS:
        findings.extend(check(inputs))
    nodes = list(inputs.cache.nodes())
    per_class = {
        name: sum(n.gpu_class.name == name for n in nodes) for name in inputs.policy.class_names
    }
    summary = {
        "policyDigest": inputs.policy.digest,
        "nodes": len(nodes),
        "gpuNodes": sum(n.gpu_count > 0 for n in nodes),
        "nodesPerClass": per_class,
        "pendingGpuPods": sum(p.intent.wants_gpus for p in inputs.pending),
        "nodeTemplates": len(inputs.templates),
    }
    return report_json(sort_findings(findings), summary)
