"""openb CSV parsing: typed tables from good files, every problem located in bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from extender.simulate import TraceError, read_nodes, read_pods
from extender.simulate.trace import MISSING_TIME
from tests.simulate.builders import NODE_FILE, openb_pods

POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
)


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pod_rows_become_typed_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        POD_HEADER
        + "p0,6000,12288,1,460,,LS,Running,427061,12902960,427061\n"
        + "p1,16000,32768,2,1000,V100M16|V100M32,BE,Pending,10,20,\n"
        + "p2,8000,30517,0,0,,Burstable,Succeeded,5,6,7\n",
    )
    pods = read_pods(path)
    assert pods.names == ("p0", "p1", "p2")
    assert pods.cpu_milli.tolist() == [6000, 16000, 8000]
    assert pods.num_gpu.tolist() == [1, 2, 0]
    assert pods.gpu_milli.tolist() == [460, 1000, 0]
    assert pods.total_gpu_milli.tolist() == [460, 2000, 0]
    assert pods.is_sharing().tolist() == [True, False, False]
    assert pods.gpu_specs == ((), ("V100M16", "V100M32"), ())
    assert pods.qos == ("LS", "BE", "Burstable")
    assert pods.scheduled_time.tolist() == [427061, MISSING_TIME, 7]


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    path = write(tmp_path, "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,10,1,1000\n")
    pods = read_pods(path)
    assert pods.gpu_specs == ((),)
    assert pods.creation_time.tolist() == [MISSING_TIME]


def test_a_gpu_spec_on_a_cpu_only_pod_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, POD_HEADER + "p0,1000,10,0,0,T4,LS,Running,1,2,3\n")
    assert read_pods(path).gpu_specs == ((),)


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ("p0,1x00,10,1,500,,LS,Running,1,2,3", "cpu_milli", "expected a whole number"),
        ("p0,1000,-5,1,500,,LS,Running,1,2,3", "memory_mib", "expected a number >= 0"),
        ("p0,1000,10,1,0,,LS,Running,1,2,3", "gpu_milli", "one-GPU pod needs gpu_milli in 1..1000"),
        ("p0,1000,10,1,1200,,LS,Running,1,2,3", "gpu_milli", "1..1000"),
        ("p0,1000,10,4,500,,LS,Running,1,2,3", "gpu_milli", "multi-GPU pod takes whole GPUs"),
        ("p0,1000,10,0,300,,LS,Running,1,2,3", "gpu_milli", "CPU-only pod"),
        ("p0,1000,10,1,500,,LS,Running,soon,2,3", "creation_time", "whole number"),
        ("p0,1000,10,1,500,,LS", "", "has 7 fields, the header has 11"),
    ],
    ids=[
        "not-a-number",
        "negative",
        "share-zero",
        "share-too-big",
        "multi-gpu-partial",
        "cpu-only-with-share",
        "bad-time",
        "short-row",
    ],
)
def test_a_bad_pod_cell_is_reported_with_file_line_and_column(
    tmp_path: Path, row: str, column: str, message: str
) -> None:
    path = write(tmp_path, POD_HEADER + "ok,1000,10,1,500,,LS,Running,1,2,3\n" + row + "\n")
    with pytest.raises(TraceError) as caught:
        read_pods(path)
    [issue] = caught.value.issues
    assert (issue.path, issue.line, issue.column) == (str(path), 3, column)
    assert message in issue.message
    assert f"{path}:3" in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        POD_HEADER
        + "p0,x,10,1,500,,LS,Running,1,2,3\n"
        + "p1,1000,y,1,500,,LS,Running,1,2,3\n"
        + "p0,1000,10,1,500,,LS,Running,1,2,3\n",
    )
    with pytest.raises(TraceError) as caught:
        read_pods(path)
    assert [(i.line, i.column) for i in caught.value.issues] == [
        (2, "cpu_milli"),
        (3, "memory_mib"),
        (4, "name"),
    ]
    assert "already on line 2" in caught.value.issues[-1].message


def test_a_missing_required_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "name,cpu_milli,num_gpu\np0,1,0\n")
    with pytest.raises(TraceError, match="lacks required column\\(s\\) memory_mib, gpu_milli"):
        read_pods(path)


@pytest.mark.parametrize("text", ["", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"])
def test_an_empty_trace_is_an_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(TraceError):
        read_pods(write(tmp_path, text))


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        read_pods(tmp_path / "absent.csv")


def test_node_rows_and_node_errors(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\nn1,32000,1024,0,nan\n",
    )
    nodes = read_nodes(good)
    assert nodes.names == ("n0", "n1")
    assert nodes.gpus.tolist() == [2, 0]
    assert nodes.models == ("P100", "")
    bad = write(
        tmp_path,
        "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,\nn0,1,1,1,T4\n",
        "nodes.csv",
    )
    with pytest.raises(TraceError) as caught:
        read_nodes(bad)
    assert [(i.line, i.column) for i in caught.value.issues] == [(2, "model"), (3, "sn")]


def test_the_shipped_trace_matches_its_readme() -> None:
    nodes = read_nodes(NODE_FILE)
    assert (len(nodes), int(nodes.gpus.sum())) == (1213, 6212)
    pods = read_pods(openb_pods("default"))
    single = pods.num_gpu == 1
    assert len(pods) == 8152
    assert int((pods.num_gpu == 0).sum()) == 1088
    assert int(single.sum()) == 6989
    assert int((single & (pods.gpu_milli < 1000)).sum()) == 3078
    assert int((pods.num_gpu > 1).sum()) == 75
