"""The `gpuclass-extender` command: validate-policy and explain, called as main(argv)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from pytest_aiohttp import AiohttpClient

from extender.cli.main import main
from extender.wire import Node, Pod
from tests.builders import EXAMPLE_POLICY, example_policy, make_cache, node_dict, pod_dict
from tests.server.payloads import app_for, names_args, priorities

NODES: dict[str, tuple[str | None, int]] = {
    "gpu-h100": ("H100", 8),
    "gpu-l40s": ("L40S", 2),
    "gpu-a100": ("A100-40GB", 2),
    "gpu-t4": ("T4", 4),
}

POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: infer-7d9f
  namespace: ml
  labels: {gpuclass.example.io/workload: interactive}
spec:
  containers:
  - name: main
    image: nvcr.io/nvidia/tritonserver:24.08-py3
    resources:
      requests: {cpu: "4", nvidia.com/gpu: "1"}
      limits: {nvidia.com/gpu: "1"}
"""


def _kind(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, **obj}


def snapshot_objects() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = [node_dict(name, product, gpus) for name, (product, gpus) in NODES.items()]
    pods = [
        # A batch job fills gpu-a100; one batch GPU on gpu-l40s lowers its separation score.
        pod_dict("train", 2, workload="batch", node="gpu-a100", phase="Running", uid="u-train"),
        pod_dict("etl", 1, workload="batch", node="gpu-l40s", phase="Running", uid="u-etl"),
        pod_dict("done", 4, workload="batch", node="gpu-t4", phase="Succeeded", uid="u-done"),
        pod_dict("waiting", 1, workload="batch", uid="u-waiting"),
    ]
    return nodes, pods


def write_snapshot(path: Path) -> Path:
    nodes, pods = snapshot_objects()
    items = [_kind("Node", n) for n in nodes] + [_kind("Pod", p) for p in pods]
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    return write_snapshot(tmp_path / "snapshot.yaml")


@pytest.fixture
def pod_file(tmp_path: Path) -> Path:
    path = tmp_path / "pod.yaml"
    path.write_text(POD_YAML)
    return path


def explain_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["explain", *argv, "-o", "json"]) == 0
    return json.loads(capsys.readouterr().out)


# ---- validate-policy ---------------------------------------------------------------------


def test_validate_policy_accepts_the_example_and_prints_ok(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate-policy", str(EXAMPLE_POLICY)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{EXAMPLE_POLICY}: ok (digest {example_policy().digest};")
    assert "classes premium > standard > economy" in out


def test_validate_policy_reports_every_problem_with_path_value_and_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE_POLICY.read_text()
    broken = text.replace("reserve: 0.25", "reserve: 2.5").replace("classFit: 4", "classFit: -1")
    assert broken != text
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    assert main(["validate-policy", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}: 2 problem(s)" in captured.err
    assert "headroom[0].reserve: got 2.5, expected " in captured.err
    assert "weights.classFit: got -1, expected " in captured.err


def test_validate_policy_checks_every_file_and_fails_if_any_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpuClasses: [\n")
    missing = tmp_path / "missing.yaml"
    assert main(["validate-policy", str(bad), str(EXAMPLE_POLICY), str(missing)]) == 1
    captured = capsys.readouterr()
    assert f"{EXAMPLE_POLICY}: ok" in captured.out
    assert f"{bad}: 1 problem(s)" in captured.err
    assert "expected valid YAML" in captured.err
    assert f"{missing}: 1 problem(s)" in captured.err
    assert "expected a readable file" in captured.err


# ---- explain -----------------------------------------------------------------------------


def test_explain_prints_a_table_of_ranked_nodes(
    snapshot: Path, pod_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["explain", "--snapshot", str(snapshot), "--policy", str(EXAMPLE_POLICY), str(pod_file)]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pod ml/infer-7d9f: workload interactive (label ")
    assert "allowed: standard or better" in lines[0]
    assert lines[1] == "requires: nvidia.com/gpu.memory > 20000"
    header = lines[2].split()
    assert header[:3] == ["NODE", "RESULT", "SCORE"]
    assert header[-3:] == ["GPU", "MEMORY", "REASON"]
    rows = [line.split()[:3] for line in lines[3:]]
    assert [r[0] for r in rows] == ["gpu-h100", "gpu-l40s", "gpu-a100", "gpu-t4"]
    assert [r[1] for r in rows] == ["pass", "pass", "failed", "unresolvable"]
    assert int(rows[0][2]) >= int(rows[1][2])
    # Each node's GPU memory, with the label (or catalogue entry) it was read from.
    assert "81559 MiB (label nvidia.com/gpu.memory)" in lines[3]
    assert lines[5].endswith("not enough free GPUs: needs 1 whole")
    assert lines[6].endswith("GPU class economy (T4-15GB) is below the required tier standard")


def test_explain_of_a_pod_our_bind_placed_shows_its_decision_record_first(
    snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = {
        "gpuclass.example.io/decision-class": "premium",
        "gpuclass.example.io/decision-score": "9",
        "gpuclass.example.io/decision-reason": "score 9/10 (the best of 4 nodes)",
        "gpuclass.example.io/decision-policy": "0ld",
    }
    pod = yaml.safe_load(POD_YAML)
    pod["metadata"]["annotations"] = record
    pod["spec"]["nodeName"] = "gpu-h100"
    path = tmp_path / "bound.yaml"
    path.write_text(yaml.safe_dump(pod))
    argv = ["explain", "--snapshot", str(snapshot), "--policy", str(EXAMPLE_POLICY), str(path)]

    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == (
        "placed on gpu-h100 (premium, score 9/10) by our bind under another policy (0ld): "
        "score 9/10 (the best of 4 nodes)"
    )
    assert lines[2] == "as the cluster is now:"
    assert lines[4].split()[:3] == ["NODE", "RESULT", "SCORE"]
    # A pod without a record explains as before.
    pod_file = tmp_path / "plain.yaml"
    pod_file.write_text(POD_YAML)
    assert (
        explain_json(
            capsys, "--snapshot", str(snapshot), "--policy", str(EXAMPLE_POLICY), str(pod_file)
        )["decision"]
        is None
    )


async def test_explain_json_scores_equal_what_prioritize_returns_for_the_same_state(
    aiohttp_client: AiohttpClient,
    snapshot: Path,
    pod_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = explain_json(
        capsys, "--snapshot", str(snapshot), "--policy", str(EXAMPLE_POLICY), str(pod_file)
    )
    assert data["pod"] == "ml/infer-7d9f"
    passed = {n["node"]: n["score"] for n in data["nodes"] if n["passed"]}
    assert list(passed) == ["gpu-h100", "gpu-l40s"]

    policy = example_policy()
    nodes, pods = snapshot_objects()
    cache = make_cache(
        policy, [msgspec.convert(n, Node) for n in nodes], [msgspec.convert(p, Pod) for p in pods]
    )
    client = await aiohttp_client(app_for(policy, cache))
    pod = yaml.safe_load(POD_YAML)
    response = await client.post("/prioritize", data=names_args(pod, list(NODES)))
    scores = priorities(await response.json(), list(NODES))
    assert {name: scores[name] for name in passed} == passed
    # The batch pod on gpu-l40s makes a difference the comparison would catch.
    assert passed["gpu-h100"] != passed["gpu-l40s"]
    filtered = await client.post("/filter", data=names_args(pod, list(NODES)))
    assert (await filtered.json())["NodeNames"] == list(passed)


def test_explain_limits_itself_to_the_named_nodes(
    snapshot: Path, pod_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = explain_json(
        capsys,
        "--snapshot",
        str(snapshot),
        "--policy",
        str(EXAMPLE_POLICY),
        "--nodes",
        "gpu-t4,gpu-l40s",
        str(pod_file),
    )
    assert [n["node"] for n in data["nodes"]] == ["gpu-l40s", "gpu-t4"]


def test_explain_reads_the_pod_from_stdin(
    snapshot: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(POD_YAML.encode())))
    data = explain_json(capsys, "--snapshot", str(snapshot), "--policy", str(EXAMPLE_POLICY), "-")
    assert data["pod"] == "ml/infer-7d9f"


def test_explain_without_server_or_snapshot_reads_the_cluster_and_says_when_it_cannot(
    pod_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-kubeconfig"
    argv = ["explain", "--kubeconfig", str(missing), "--policy", str(EXAMPLE_POLICY)]
    assert main([*argv, str(pod_file)]) == 1
    assert f"error: no cluster credentials ({missing})" in capsys.readouterr().err


def test_explain_names_a_missing_manifest_instead_of_asking_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["explain", "--snapshot", str(tmp_path / "s.yaml"), "--policy", str(EXAMPLE_POLICY)]
    assert main([*argv, str(tmp_path / "pod.yaml")]) == 1
    assert "pod.yaml: no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("items: [\n", "error: snapshot "),
        (
            "kind: List\nitems:\n- kind: Node\n  metadata: {name: n, labels: {1: a}}\n",
            "object 0 (Node)",
        ),
        ("kind: List\nitems:\n- kind: Pod\n  metadata: {name: 5}\n", "object 0 (Pod)"),
    ],
    ids=["not-yaml", "non-string-key", "wrong-type"],
)
def test_explain_reports_a_bad_snapshot_without_a_traceback(
    tmp_path: Path,
    pod_file: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    path = tmp_path / "bad-snapshot.yaml"
    path.write_text(content)
    code = main(
        ["explain", "--snapshot", str(path), "--policy", str(EXAMPLE_POLICY), str(pod_file)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: snapshot ")
    assert message in err


async def test_explain_against_a_running_server_matches_the_snapshot_answer(
    aiohttp_client: AiohttpClient,
    snapshot: Path,
    pod_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    offline = explain_json(
        capsys, "--snapshot", str(snapshot), "--policy", str(EXAMPLE_POLICY), str(pod_file)
    )
    policy = example_policy()
    nodes, pods = snapshot_objects()
    cache = make_cache(
        policy, [msgspec.convert(n, Node) for n in nodes], [msgspec.convert(p, Pod) for p in pods]
    )
    client = await aiohttp_client(app_for(policy, cache))
    url = str(client.make_url("/")).rstrip("/")
    # The CLI blocks on urllib, so it runs in a thread while the loop serves the request.
    code = await asyncio.to_thread(main, ["explain", "--server", url, "-o", "json", str(pod_file)])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == offline
    bad = pod_file.with_name("bad.yaml")
    bad.write_text("kind: Deployment\n")
    code = await asyncio.to_thread(main, ["explain", "--server", url, str(bad)])
    assert code == 1
    err = capsys.readouterr().err
    assert "/debug/explain: HTTP 400: " in err
    assert "expected a single Pod object" in err


def test_serve_with_an_admission_port_but_no_certificate_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["serve", "--policy", str(EXAMPLE_POLICY), "--admission-port", "9443"]
    assert main(argv) == 2
    assert "--admission-port needs --tls-cert" in capsys.readouterr().err
