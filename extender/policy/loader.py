"""Load a policy from YAML text or a file; every problem is reported with its path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydantic
import yaml

from extender.errors import PolicyError, PolicyIssue
from extender.policy.compiled import Policy
from extender.policy.model import DNS_LABEL, LABEL_KEY, PolicyDocument
from extender.policy.products import normalise_product

# A policy file is a few KiB; this bound keeps a mistaken mount from eating memory.
MAX_POLICY_BYTES = 1 << 20

_EXPECTED_BY_TYPE = {
    "extra_forbidden": "no such field here (check spelling and indentation)",
    "missing": "this required field",
}
_EXPECTED_BY_BOUND = {
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "string_type": "a string",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "less_than": "a number less than {lt}",
    "less_than_equal": "a number at most {le}",
    "greater_than": "a number greater than {gt}",
    "greater_than_equal": "a number at least {ge}",
    "too_short": "at least {min_length} item(s)",
    "string_too_long": "at most {max_length} characters",
}
_PATTERN_MEANING = {
    DNS_LABEL: "a lower-case DNS label: a-z, 0-9 and '-', starting and ending alphanumeric",
    LABEL_KEY: "a Kubernetes label key such as example.com/name",
}


def load_policy_file(path: Path) -> Policy:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            [PolicyIssue("<file>", str(path), f"a readable file ({exc.strerror})")], str(path)
        ) from None
    return load_policy_text(data, source=str(path))


def load_policy_text(text: str | bytes, source: str = "policy") -> Policy:
    """Parse, validate and compile a policy document; raises PolicyError with all issues."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(
            [PolicyIssue("<file>", f"{len(raw)} bytes", f"at most {MAX_POLICY_BYTES} bytes")],
            source,
        )
    data = _parse_yaml(raw, source)
    try:
        doc = PolicyDocument.model_validate(data)
    except pydantic.ValidationError as exc:
        raise PolicyError(_issues_from_pydantic(exc.errors()), source) from None
    issues = list(check_references(doc))
    if issues:
        raise PolicyError(issues, source)
    return Policy.compile(doc, hashlib.sha256(raw).hexdigest()[:16])


def dump_policy(policy: Policy) -> str:
    """The policy as YAML that loads back to an equal document."""
    data = policy.document.model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)


def _parse_yaml(raw: bytes, source: str) -> Any:
    try:
        documents = list(yaml.safe_load_all(raw))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<document>"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([PolicyIssue(where, problem, "valid YAML")], source) from None
    documents = [d for d in documents if d is not None]
    if len(documents) != 1:
        raise PolicyError(
            [PolicyIssue("<document>", f"{len(documents)} documents", "exactly one")], source
        )
    if not isinstance(documents[0], dict):
        raise PolicyError(
            [PolicyIssue("<document>", type(documents[0]).__name__, "a mapping")], source
        )
    return documents[0]


def _issues_from_pydantic(errors: list[Any]) -> list[PolicyIssue]:
    issues = []
    locs = [tuple(e["loc"]) for e in errors]
    for error, loc in zip(errors, locs, strict=True):
        # A list whose items failed is also reported as too short: say only the real cause.
        if error["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs):
            continue
        issues.append(_issue_from_pydantic(error))
    return issues


def _issue_from_pydantic(error: Any) -> PolicyIssue:
    path = ""
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    value = "<absent>" if error["type"] == "missing" else error.get("input")
    return PolicyIssue(path or "<document>", value, _expected(error))


def _expected(error: Any) -> str:
    if error["type"] in _EXPECTED_BY_TYPE:
        return _EXPECTED_BY_TYPE[error["type"]]
    if error["type"] == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return _PATTERN_MEANING.get(pattern, f"a string matching {pattern}")
    ctx = error.get("ctx", {})
    if error["type"] in _EXPECTED_BY_BOUND:
        return _EXPECTED_BY_BOUND[error["type"]].format(**ctx)
    message = str(error["msg"]).removeprefix("Value error, ")
    return message.removeprefix("Input should be ")


def check_references(doc: PolicyDocument) -> Iterable[PolicyIssue]:
    """Cross-field checks: every name used is defined, and no wish contradicts another."""
    classes = [c.name for c in doc.gpu_classes]
    class_set = set(classes)
    workloads = set(doc.workload_classes)
    known_classes = f"one of the gpuClasses {classes}"
    known_workloads = f"one of the workloadClasses {sorted(workloads)}"

    seen: set[str] = set()
    for i, name in enumerate(classes):
        if name in seen:
            yield PolicyIssue(f"gpuClasses[{i}].name", name, "a name not used by another class")
        seen.add(name)

    owner: dict[str, str] = {}
    for i, gpu_class in enumerate(doc.gpu_classes):
        for j, product in enumerate(gpu_class.products):
            pattern = normalise_product(product)
            path = f"gpuClasses[{i}].products[{j}]"
            if not pattern:
                yield PolicyIssue(path, product, "a GPU product name such as H100 or A100-80GB")
            elif pattern in owner and owner[pattern] != gpu_class.name:
                yield PolicyIssue(
                    path, product, f"a product not already listed in class {owner[pattern]!r}"
                )
            owner.setdefault(pattern, gpu_class.name)

    wc = doc.workload_classification
    if wc.default not in workloads:
        yield PolicyIssue("workloadClassification.default", wc.default, known_workloads)
    for key, value in wc.priority_class_names.items():
        if value not in workloads:
            yield PolicyIssue(
                f"workloadClassification.priorityClassNames.{key}", value, known_workloads
            )
    for key, value in wc.owner_kinds.items():
        if value not in workloads:
            yield PolicyIssue(f"workloadClassification.ownerKinds.{key}", value, known_workloads)

    for name, spec in doc.workload_classes.items():
        base = f"workloadClasses.{name}"
        for field, values in (
            ("requiredClasses", spec.required_classes or ()),
            ("excludedClasses", spec.excluded_classes),
            ("preferredClasses", spec.preferred_classes),
        ):
            for i, value in enumerate(values):
                if value not in class_set:
                    yield PolicyIssue(f"{base}.{field}[{i}]", value, known_classes)
        if spec.min_class is not None and spec.min_class not in class_set:
            yield PolicyIssue(f"{base}.minClass", spec.min_class, known_classes)
        allowed = allowed_classes(
            classes, spec.required_classes, spec.min_class, spec.excluded_classes
        )
        named = [*(spec.required_classes or ()), *spec.excluded_classes]
        if spec.min_class is not None:
            named.append(spec.min_class)
        # An unknown name is already reported; the emptiness it causes is no news.
        if not allowed and all(name in class_set for name in named):
            yield PolicyIssue(
                base,
                {
                    "requiredClasses": spec.required_classes,
                    "minClass": spec.min_class,
                    "excludedClasses": spec.excluded_classes,
                },
                "required, minimum and excluded classes that leave at least one class allowed",
            )
        for i, value in enumerate(spec.preferred_classes):
            if value in class_set and value not in allowed:
                yield PolicyIssue(
                    f"{base}.preferredClasses[{i}]",
                    value,
                    f"a class this workload may use {allowed}",
                )
        for i, value in enumerate(spec.separation.avoid):
            if value not in workloads:
                yield PolicyIssue(f"{base}.separation.avoid[{i}]", value, known_workloads)
            elif value == name:
                yield PolicyIssue(
                    f"{base}.separation.avoid[{i}]", value, "another workload class than itself"
                )

    for i, dedicated in enumerate(doc.dedicated.classes):
        if dedicated.gpu_class not in class_set:
            yield PolicyIssue(f"dedicated.classes[{i}].class", dedicated.gpu_class, known_classes)
        if dedicated.workload not in workloads:
            yield PolicyIssue(
                f"dedicated.classes[{i}].workload", dedicated.workload, known_workloads
            )

    headroom_classes: set[str] = set()
    for i, headroom in enumerate(doc.headroom):
        if headroom.gpu_class not in class_set:
            yield PolicyIssue(f"headroom[{i}].class", headroom.gpu_class, known_classes)
        elif headroom.gpu_class in headroom_classes:
            yield PolicyIssue(
                f"headroom[{i}].class", headroom.gpu_class, "one headroom entry per class"
            )
        headroom_classes.add(headroom.gpu_class)
        for j, value in enumerate(headroom.for_workloads):
            if value not in workloads:
                yield PolicyIssue(f"headroom[{i}].for[{j}]", value, known_workloads)


def allowed_classes(
    classes: list[str],
    required: Iterable[str] | None,
    min_class: str | None,
    excluded: Iterable[str],
) -> list[str]:
    """The classes, in tier order, that pass required, minimum-tier and excluded wishes."""
    required_set = None if required is None else set(required)
    excluded_set = set(excluded)
    limit = classes.index(min_class) if min_class in classes else len(classes) - 1
    return [
        c
        for rank, c in enumerate(classes)
        if rank <= limit and (required_set is None or c in required_set) and c not in excluded_set
    ]
