"""What `doctor` reports: findings with a severity and a fix, as a table or as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
Area = Literal["labels", "over-constraint", "autoscaling", "policy"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing an admin should know, on one subject, with what to do about it."""

    severity: Severity
    area: Area
    code: str  # stable, kebab-case: what kind of finding (for scripts and docs)
    subject: str  # "node/a1", "pod/ns/name", "class/premium", "NodePool/gpu"
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then by area, kind and subject: a stable order for people and diffs."""
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.area, f.code, f.subject))


def report_json(findings: list[Finding], summary: dict[str, Any]) -> dict[str, Any]:
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    return {"summary": summary | {"findings": counts}, "findings": [f.as_dict() for f in findings]}


def report_table(data: dict[str, Any]) -> str:
    """The JSON report as text: a summary line, then one block per finding."""
    summary = data["summary"]
    counts = summary["findings"]
    classes = ", ".join(f"{c} {n}" for c, n in summary["nodesPerClass"].items())
    lines = [
        f"cluster: {summary['nodes']} nodes ({summary['gpuNodes']} with GPUs; {classes}), "
        f"{summary['pendingGpuPods']} pending GPU pods, {summary['nodeTemplates']} node templates",
        f"findings: {counts['error']} error(s), {counts['warning']} warning(s), "
        f"{counts['info']} info",
    ]
    for f in data["findings"]:
        lines += [
            "",
            f"{f['severity'].upper():<8}{f['area']}/{f['code']}  {f['subject']}",
            f"        {f['message']}",
            f"  fix:  {f['fix']}",
        ]
    return "\n".join(lines)
