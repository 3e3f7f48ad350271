"""Read the openb GPU-cluster trace (node list and pod list CSVs) into typed numpy tables.

Format: data/README.md, after the FGD paper's trace release (Weng et al.,
"Beware of Fragmentation", USENIX ATC'23; repository hkust-adsl/kubernetes-scheduler-simulator,
`data/README.md`). Every malformed cell is reported with its file, line and column, all at
once, so a broken trace is fixed in one pass.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from extender.errors import ExtenderError

IntArray = npt.NDArray[np.int64]

WHOLE_GPU = 1000
"""Milli-GPU in one GPU: a sharing pod asks for 1..999 of one GPU's 1000."""

MISSING_TIME = -1
"""Stands for an empty or absent creation/deletion/scheduled time."""

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_REQUIRED_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
POD_OPTIONAL_COLUMNS = (
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
_MAX_ERRORS_SHOWN = 20
_ANY_MODEL: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceIssue:
    """One bad cell (or row, or header): where it is and what is wrong."""

    path: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        if self.column:
            where += f" column {self.column}"
        return f"{where}: {self.message}"


class TraceError(ExtenderError):
    """A trace file is missing, unreadable or malformed; `issues` lists every problem."""

    def __init__(self, issues: Sequence[TraceIssue]) -> None:
        self.issues = list(issues)
        shown = "\n".join(f"  {issue}" for issue in self.issues[:_MAX_ERRORS_SHOWN])
        more = len(self.issues) - _MAX_ERRORS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(self.issues)} problem(s) in trace\n{shown}{tail}")


@dataclass(frozen=True, slots=True, eq=False)
class NodeTable:
    """The cluster's nodes, one row each: capacity and GPU model (empty for CPU nodes)."""

    names: tuple[str, ...]
    cpu_milli: IntArray
    memory_mib: IntArray
    gpus: IntArray
    models: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True, slots=True, eq=False)
class PodTable:
    """Pods (tasks) of a trace, one row each, in file order.

    `gpu_milli` is the share of each requested GPU: 1..999 for a pod sharing one GPU,
    1000 for whole GPUs, 0 for CPU-only pods. `gpu_specs[i]` lists the GPU models pod i
    accepts; empty means any model.
    """

    names: tuple[str, ...]
    cpu_milli: IntArray
    memory_mib: IntArray
    num_gpu: IntArray
    gpu_milli: IntArray
    gpu_specs: tuple[tuple[str, ...], ...]
    qos: tuple[str, ...]
    phases: tuple[str, ...]
    creation_time: IntArray
    deletion_time: IntArray
    scheduled_time: IntArray

    def __len__(self) -> int:
        return len(self.names)

    @property
    def total_gpu_milli(self) -> IntArray:
        """GPU milli each pod asks for in all (num_gpu x gpu_milli)."""
        return self.num_gpu * self.gpu_milli

    def is_sharing(self) -> npt.NDArray[np.bool_]:
        sharing: npt.NDArray[np.bool_] = (self.num_gpu == 1) & (self.gpu_milli < WHOLE_GPU)
        return sharing

    def take(self, rows: npt.ArrayLike) -> PodTable:
        """The pods at `rows`, in that order (rows may repeat)."""
        idx = np.asarray(rows, dtype=np.int64)
        picked = idx.tolist()
        return PodTable(
            names=tuple(self.names[i] for i in picked),
            cpu_milli=self.cpu_milli[idx],
            memory_mib=self.memory_mib[idx],
            num_gpu=self.num_gpu[idx],
            gpu_milli=self.gpu_milli[idx],
            gpu_specs=tuple(self.gpu_specs[i] for i in picked),
            qos=tuple(self.qos[i] for i in picked),
            phases=tuple(self.phases[i] for i in picked),
            creation_time=self.creation_time[idx],
            deletion_time=self.deletion_time[idx],
            scheduled_time=self.scheduled_time[idx],
        )


T = TypeVar("T")


class _Rows:
    """Reads a CSV with a header; collects issues instead of stopping at the first."""

    def __init__(self, path: Path, required: Sequence[str], optional: Sequence[str]) -> None:
        self.path = str(path)
        self.issues: list[TraceIssue] = []
        self._required = required
        self._optional = optional
        self.line = 1
        self._column = ""

    def issue(self, message: str, column: str | None = None) -> None:
        where = self._column if column is None else column
        self.issues.append(TraceIssue(self.path, self.line, where, message))

    def read(self, text: str) -> Iterator[dict[str, str]]:
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        if header is None:
            self.issue("empty file, expected a header line", "")
            return
        header = [name.strip() for name in header]
        missing = [name for name in self._required if name not in header]
        if missing:
            self.issue(f"header lacks required column(s) {', '.join(missing)}", "")
            return
        wanted = [*self._required, *(name for name in self._optional if name in header)]
        positions = {name: header.index(name) for name in wanted}
        for fields in reader:
            self.line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue  # a blank line (e.g. at the end) is not a row
            if len(fields) != len(header):
                self.issue(f"has {len(fields)} fields, the header has {len(header)}", "")
                continue
            yield {name: fields[pos].strip() for name, pos in positions.items()}

    def cell(self, row: dict[str, str], column: str, parse: Callable[[str], T], default: T) -> T:
        """Parse one cell; on failure record the issue and return `default`."""
        self._column = column
        raw = row.get(column)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.issue(f"{raw!r}: {exc}")
            return default


def _non_negative_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 0:
        raise ValueError("expected a number >= 0")
    return value


def _optional_time(raw: str) -> int:
    return MISSING_TIME if raw == "" else _non_negative_int(raw)


def _gpu_spec(raw: str) -> tuple[str, ...]:
    # The reference drops empty parts ("a||b" -> a, b): pod_csv_to_yaml.py in the FGD repo.
    return tuple(part.strip() for part in raw.split("|") if part.strip())


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError([TraceIssue(str(path), 0, "", f"cannot read: {exc}")]) from exc


def read_nodes(path: str | Path) -> NodeTable:
    """Parse an openb node list (`sn,cpu_milli,memory_mib,gpu,model`)."""
    file = Path(path)
    rows = _Rows(file, NODE_COLUMNS, ())
    names: list[str] = []
    cpu: list[int] = []
    memory: list[int] = []
    gpus: list[int] = []
    models: list[str] = []
    seen: dict[str, int] = {}
    for row in rows.read(_read_text(file)):
        name = row["sn"]
        if not name:
            rows.issue("empty node name", "sn")
        elif name in seen:
            rows.issue(f"node {name!r} already on line {seen[name]}", "sn")
        seen.setdefault(name, rows.line)
        names.append(name)
        cpu.append(rows.cell(row, "cpu_milli", _non_negative_int, 0))
        memory.append(rows.cell(row, "memory_mib", _non_negative_int, 0))
        count = rows.cell(row, "gpu", _non_negative_int, 0)
        gpus.append(count)
        model = row["model"]
        if model.lower() == "nan":
            model = ""  # pandas writes a missing model as "nan" (CPU-only nodes)
        if count > 0 and not model:
            rows.issue(f"node has {count} GPU(s) but no model", "model")
        models.append(model)
    if not rows.issues and not names:
        rows.issue("no nodes", "")
    if rows.issues:
        raise TraceError(rows.issues)
    return NodeTable(
        names=tuple(names),
        cpu_milli=np.array(cpu, dtype=np.int64),
        memory_mib=np.array(memory, dtype=np.int64),
        gpus=np.array(gpus, dtype=np.int64),
        models=tuple(models),
    )


def read_pods(path: str | Path) -> PodTable:
    """Parse an openb pod list; the columns after `gpu_milli` are optional.

    A pod asks for `num_gpu` GPUs of `gpu_milli` each: `num_gpu` 1 with `gpu_milli` < 1000
    shares one GPU, `num_gpu` > 1 takes whole GPUs (`gpu_milli` must be 1000), `num_gpu` 0
    is CPU-only (`gpu_milli` must be 0; a `gpu_spec` on it is ignored, as the reference does).
    """
    file = Path(path)
    rows = _Rows(file, POD_REQUIRED_COLUMNS, POD_OPTIONAL_COLUMNS)
    names: list[str] = []
    cpu: list[int] = []
    memory: list[int] = []
    num_gpu: list[int] = []
    gpu_milli: list[int] = []
    specs: list[tuple[str, ...]] = []
    qos: list[str] = []
    phases: list[str] = []
    times: dict[str, list[int]] = {"creation_time": [], "deletion_time": [], "scheduled_time": []}
    seen: dict[str, int] = {}
    for row in rows.read(_read_text(file)):
        name = row["name"]
        if not name:
            rows.issue("empty pod name", "name")
        elif name in seen:
            rows.issue(f"pod {name!r} already on line {seen[name]}", "name")
        seen.setdefault(name, rows.line)
        names.append(name)
        cpu.append(rows.cell(row, "cpu_milli", _non_negative_int, 0))
        memory.append(rows.cell(row, "memory_mib", _non_negative_int, 0))
        count = rows.cell(row, "num_gpu", _non_negative_int, 0)
        milli = rows.cell(row, "gpu_milli", _non_negative_int, 0)
        if count == 0 and milli != 0:
            rows.issue(f"{milli}: a CPU-only pod (num_gpu 0) must have gpu_milli 0", "gpu_milli")
        elif count == 1 and not 1 <= milli <= WHOLE_GPU:
            rows.issue(f"{milli}: a one-GPU pod needs gpu_milli in 1..1000", "gpu_milli")
        elif count > 1 and milli != WHOLE_GPU:
            rows.issue(f"{milli}: a multi-GPU pod takes whole GPUs, gpu_milli 1000", "gpu_milli")
        num_gpu.append(count)
        gpu_milli.append(milli if count > 0 else 0)
        spec = rows.cell(row, "gpu_spec", _gpu_spec, _ANY_MODEL)
        specs.append(spec if count > 0 else ())
        qos.append(row.get("qos", ""))
        phases.append(row.get("pod_phase", ""))
        for column, values in times.items():
            values.append(rows.cell(row, column, _optional_time, MISSING_TIME))
    if not rows.issues and not names:
        rows.issue("no pods", "")
    if rows.issues:
        raise TraceError(rows.issues)
    return PodTable(
        names=tuple(names),
        cpu_milli=np.array(cpu, dtype=np.int64),
        memory_mib=np.array(memory, dtype=np.int64),
        num_gpu=np.array(num_gpu, dtype=np.int64),
        gpu_milli=np.array(gpu_milli, dtype=np.int64),
        gpu_specs=tuple(specs),
        qos=tuple(qos),
        phases=tuple(phases),
        creation_time=np.array(times["creation_time"], dtype=np.int64),
        deletion_time=np.array(times["deletion_time"], dtype=np.int64),
        scheduled_time=np.array(times["scheduled_time"], dtype=np.int64),
    )
