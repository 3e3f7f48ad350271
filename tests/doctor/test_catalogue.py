"""docs/doctor.md lists every finding kind the doctor emits, each with tests that exist."""

from __future__ import annotations

import re

from tests.builders import REPO

DOCTOR = REPO / "extender" / "doctor"
CATALOGUE = REPO / "docs" / "doctor.md"


def emitted_kinds() -> set[str]:
    pattern = re.compile(r'Finding\(\s*"(?:error|warning|info)",\s*"[a-z-]+",\s*"([a-z-]+)"')
    return {kind for path in DOCTOR.glob("*.py") for kind in pattern.findall(path.read_text())}


def catalogue() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z-]+)` \|[^|]*\|[^|]*\| (.*) \|$", CATALOGUE.read_text(), re.M)
    return dict(rows)


def test_every_kind_the_code_emits_is_in_the_catalogue_and_no_other() -> None:
    assert len(emitted_kinds()) > 20
    assert set(catalogue()) == emitted_kinds()


def test_every_test_the_catalogue_names_exists() -> None:
    sources = {str(p.relative_to(REPO)): p.read_text() for p in (REPO / "tests").rglob("test_*.py")}
    for kind, tests in catalogue().items():
        for ref in re.findall(r"`([^`]+)`", tests):
            file, _, name = ref.partition("::")
            matches = [text for path, text in sources.items() if path.endswith("/" + file)]
            assert len(matches) == 1, f"{kind}: {file} names {len(matches)} test files"
            (text,) = matches
            if name:
                assert f"def {name}(" in text, f"{kind}: {file} has no {name}"
            assert kind in text, f"{kind}: {file} does not assert it"
