"""Doctor inputs from node and pod dicts, as one listing of a cluster would give them."""

from __future__ import annotations

from typing import Any

import orjson

from extender.doctor import diagnose
from extender.doctor.inputs import DoctorInputs, inputs_from_objects
from extender.doctor.templates import NodeTemplate
from extender.policy import Policy


def inputs(
    policy: Policy,
    nodes: list[dict[str, Any]],
    pods: list[dict[str, Any]] = (),  # type: ignore[assignment]
    templates: list[NodeTemplate] = (),  # type: ignore[assignment]
) -> DoctorInputs:
    return inputs_from_objects(
        policy, [orjson.dumps(n) for n in nodes], [orjson.dumps(p) for p in pods], list(templates)
    )


def findings(view: DoctorInputs, code: str | None = None) -> list[dict[str, str]]:
    found = diagnose(view)["findings"]
    return [f for f in found if code is None or f["code"] == code]


def codes(view: DoctorInputs) -> set[str]:
    return {f["code"] for f in findings(view)}
