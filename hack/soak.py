"""Soak: the extender for a long while at a steady request rate, with the cluster changing.

`make soak` (not in CI): a local kube-apiserver, 100 fake GPU nodes and `gpuclass-extender
serve` with Events on and the admission webhook; for --minutes (30) it sends filter,
prioritize and admission reviews at --rate (100/s), some for pods no node can take (so
Events are written), while nodes are relabelled, added and removed, pods created and bound
through our bind verb or deleted, and the policy file rewritten every minute. Reported per
5-minute window: p50 and p99 latency and RSS (a plot beside the report). It holds, with
the thresholds below fixed before any run, when no request or churn step failed, both
stay flat (last window's p99 within P99_DRIFT x the first's, RSS within RSS_DRIFT) and, at
the end, the cache equals a fresh list: the same nodes, and on each node the same pods.

    python hack/soak.py --minutes 30 --report docs/reliability-soak.md
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import localcluster
import orjson

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "manifests" / "base" / "policy.yaml"
PRODUCTS = (("H100", 8), ("L40S", 4), ("T4", 4))
NAMESPACE = "soak"
WINDOW_SECONDS = 300
P99_DRIFT = 1.5  # last window's p99 at most this times the first's
RSS_DRIFT = 0.10  # last window's RSS at most this much above the first's
UNPLACEABLE_EVERY = 10  # every 10th probe asks for more GPUs than any node has: an Event


@dataclass
class Samples:
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (t, ms)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (t, MiB)
    errors: list[str] = field(default_factory=list)
    churn: dict[str, int] = field(default_factory=dict)


def node_labels(product: str, gpus: int, extra: str = "") -> dict[str, str]:
    labels = {**localcluster.gfd_labels(product, gpus), "soak/zone": extra or "a"}
    return labels


def probe_pod(k: int) -> dict[str, object]:
    workload = ("interactive", "batch")[k % 2]
    gpus = 16 if k % UNPLACEABLE_EVERY == 0 else 1 + k % 2
    return {
        "metadata": {"name": f"probe-{k % 1000}", "namespace": NAMESPACE,
                     "uid": f"probe-{k % 1000}",
                     "labels": {"gpuclass.example.io/workload": workload}},
        "spec": {"schedulerName": "gpu-scheduler", "containers": [
            {"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
    }  # fmt: skip


def request(names: list[str], k: int) -> tuple[str, bytes]:
    """Filter, prioritize and an admission review in turn."""
    verb = ("/filter", "/prioritize", "/mutate")[k % 3]
    if verb == "/mutate":
        review = {
            "uid": f"review-{k}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "object": probe_pod(k),
        }
        return verb, orjson.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": review}
        )
    return verb, orjson.dumps({"Pod": probe_pod(k), "NodeNames": names, "Nodes": None})


def load(url_port: int, names: list[str], rate: float, stop: threading.Event, out: Samples) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", url_port, timeout=10)
    interval = 1.0 / rate
    next_at = time.monotonic()
    k = 0
    while not stop.is_set():
        verb, body = request(list(names), k)
        started = time.monotonic()
        try:
            connection.request("POST", verb, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                out.errors.append(f"{verb}: {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            out.errors.append(f"{verb}: {exc!r}")
            connection.close()
        out.latencies.append((started, (time.monotonic() - started) * 1000))
        k += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def bind(port: int, name: str, uid: str, node: str) -> str:
    """Our bind verb for a pod; its answer's Error ("" when bound; a refusal otherwise)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = {"PodName": name, "PodNamespace": NAMESPACE, "PodUID": uid, "Node": node}
        connection.request(
            "POST", "/bind", orjson.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise localcluster.LocalClusterError(f"bind: HTTP {response.status}: {answer[:200]!r}")
        error: str = orjson.loads(answer).get("Error", "")
        return error
    finally:
        connection.close()


def churn(
    cluster: localcluster.LocalCluster,
    port: int,
    names: list[str],
    policy: Path,
    stop: threading.Event,
    out: Samples,
) -> None:
    rng = random.Random(42)
    kubeconfig = cluster.kubeconfig
    bound: list[str] = []
    spare = 0
    last_policy = time.monotonic()
    counts = out.churn
    while not stop.is_set():
        action = rng.choice(["relabel", "bind", "bind", "delete", "node"])
        try:
            if action == "relabel":
                node = rng.choice(names)
                patch = {"metadata": {"labels": {"soak/zone": rng.choice("abc")}}}
                cluster.request("PATCH", f"/api/v1/nodes/{node}", patch,
                                "application/merge-patch+json")  # fmt: skip
            elif action == "bind":
                # A pending pod of our scheduler, bound through our bind verb (as the
                # scheduler would call it): the re-check, the Binding, the decision record.
                name = f"pod-{counts.get('bind', 0)}"
                workload = rng.choice(["interactive", "batch"])
                pod = {
                    "metadata": {"name": name,
                                 "labels": {"gpuclass.example.io/workload": workload}},
                    "spec": {"schedulerName": "gpu-scheduler", "containers": [
                        {"name": "c", "image": "x", "resources": {
                            "limits": {"nvidia.com/gpu": "1"},
                            "requests": {"nvidia.com/gpu": "1"}}}]},
                }  # fmt: skip
                created = cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod)
                answer = bind(port, name, created["metadata"]["uid"], rng.choice(names))
                counts["bind refused" if answer else "bound"] = (
                    counts.get("bind refused" if answer else "bound", 0) + 1
                )
                bound.append(name)
            elif action == "delete" and bound:
                name = bound.pop(rng.randrange(len(bound)))
                cluster.request(
                    "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}?gracePeriodSeconds=0"
                )
            elif action == "node":
                # Replace a node: delete it and add a fresh one; the load follows the names.
                old = rng.choice(names)
                cluster.request("DELETE", f"/api/v1/nodes/{old}")
                spare += 1
                product, gpus = PRODUCTS[spare % len(PRODUCTS)]
                new = f"soak-new-{spare}"
                localcluster.apply_fake_node(kubeconfig, new, node_labels(product, gpus), gpus)
                names[names.index(old)] = new
            counts[action] = counts.get(action, 0) + 1
        except localcluster.LocalClusterError as exc:
            out.errors.append(f"churn {action}: {exc}")
        if time.monotonic() - last_policy > 60:
            text = policy.read_text()
            weight = "packing: 1" if "packing: 2" in text else "packing: 2"
            policy.write_text(text.replace("packing: 1", weight).replace("packing: 2", weight))
            counts["policy"] = counts.get("policy", 0) + 1
            last_policy = time.monotonic()
        time.sleep(0.2)


def cache_matches_a_fresh_list(cluster: localcluster.LocalCluster, port: int) -> list[str]:
    """Differences between the extender's cache and what the API server lists now."""
    nodes = {n["metadata"]["name"] for n in cluster.request("GET", "/api/v1/nodes")["items"]}
    pods = cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]
    on_node: dict[str, set[str]] = {n: set() for n in nodes}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node in on_node:
            on_node[node].add(f"{NAMESPACE}/{pod['metadata']['name']}")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    differences = []
    connection.request("GET", "/debug/cache")
    summary = orjson.loads(connection.getresponse().read())
    if summary["counts"]["nodes"] != len(nodes):
        differences.append(f"{summary['counts']['nodes']} nodes cached, {len(nodes)} listed")
    for node, listed in sorted(on_node.items()):
        connection.request("GET", f"/debug/cache?node={node}")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            differences.append(f"{node}: not in the cache")
            continue
        cached = {p["pod"] for p in orjson.loads(body)["pods"]}
        if cached != listed:
            differences.append(f"{node}: cache {sorted(cached)} vs list {sorted(listed)}")
    return differences


def windows(samples: Samples, started: float, minutes: float) -> list[dict[str, float]]:
    rows = []
    count = max(1, int(minutes * 60 // WINDOW_SECONDS))
    span = min(WINDOW_SECONDS, minutes * 60)
    for w in range(count):
        low, high = started + w * span, started + (w + 1) * span
        ms = [m for t, m in samples.latencies if low <= t < high]
        rss = [r for t, r in samples.rss if low <= t < high]
        if not ms:
            continue
        ms.sort()
        rows.append({
            "window": w + 1, "requests": len(ms), "p50": statistics.median(ms),
            "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
            "rss": rss[-1] if rss else 0.0,
        })  # fmt: skip
    return rows


def plot(samples: Samples, started: float, rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    minutes = [(t - started) / 60 for t, _ in samples.rss]
    bottom.plot(minutes, [r for _, r in samples.rss])
    bottom.set_ylabel("RSS (MiB)")
    bottom.set_xlabel("minutes")
    mids = [(r["window"] - 0.5) * WINDOW_SECONDS / 60 for r in rows]
    top.plot(mids, [r["p50"] for r in rows], marker="o", label="p50")
    top.plot(mids, [r["p99"] for r in rows], marker="o", label="p99")
    top.set_ylabel("latency (ms)")
    top.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)


def _count(event: dict[str, object]) -> int:
    series = event.get("series")
    return int(series.get("count", 1)) if isinstance(series, dict) else 1


def commit() -> str:
    import subprocess

    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "extender", "hack"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100, help="requests per second")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--report", type=Path, help="Markdown report (a PNG beside it)")
    args = parser.parse_args(argv)
    samples = Samples()
    with tempfile.TemporaryDirectory(prefix="gpuclass-soak-") as workdir:
        work = Path(workdir)
        cluster = localcluster.LocalCluster(state_dir=work / "cluster").start()
        try:
            cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
            names = []
            for i in range(args.nodes):
                product, gpus = PRODUCTS[i % len(PRODUCTS)]
                name = f"soak-{i}"
                localcluster.apply_fake_node(
                    cluster.kubeconfig, name, node_labels(product, gpus), gpus
                )
                names.append(name)
            policy = work / "policy.yaml"
            policy.write_text(POLICY.read_text())
            extender = localcluster.ExtenderProcess(
                kubeconfig=cluster.kubeconfig, policy=policy, log=work / "extender.log",
                extra_args=("--policy-poll-seconds", "1", "--admission-webhook"),
            )  # fmt: skip
            extender.start()
            assert extender.pid is not None
            stop = threading.Event()
            started = time.monotonic()
            load_args = (extender.port, names, args.rate, stop, samples)
            threads = [
                threading.Thread(target=load, args=load_args),
                threading.Thread(
                    target=churn, args=(cluster, extender.port, names, policy, stop, samples)
                ),
            ]
            for thread in threads:
                thread.start()
            while time.monotonic() - started < args.minutes * 60:
                samples.rss.append(
                    (time.monotonic(), localcluster.proc_status_kib(extender.pid, "VmRSS") / 1024)
                )
                time.sleep(10)
            stop.set()
            for thread in threads:
                thread.join()
            time.sleep(3)  # the last churn events reach the cache
            differences = cache_matches_a_fresh_list(cluster, extender.port)
            events = cluster.request(
                "GET", f"/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events"
            )["items"]
            ours = [e for e in events if e.get("reason") == "GpuClassUnschedulable"]
            extender.stop()
        finally:
            cluster.stop()
    finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = windows(samples, started, args.minutes)
    p99_drift = rows[-1]["p99"] / rows[0]["p99"]
    rss_drift = rows[-1]["rss"] / rows[0]["rss"] - 1
    holds = (
        not samples.errors and not differences and p99_drift <= P99_DRIFT and rss_drift <= RSS_DRIFT
    )
    lines = [
        "| window | requests | p50 ms | p99 ms | RSS MiB |",
        "|---|---|---|---|---|",
        *(f"| {r['window']:.0f} | {r['requests']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
          f"{r['rss']:.1f} |" for r in rows),
    ]  # fmt: skip
    verdict = [
        f"- {len(samples.latencies)} requests at {args.rate:g}/s over {args.minutes:g} min, "
        f"{len(samples.errors)} errors (must be 0)"
        + (f": {'; '.join(samples.errors[:5])}" if samples.errors else ""),
        f"- churn: {', '.join(f'{k} {v}' for k, v in sorted(samples.churn.items()))}",
        f"- GpuClassUnschedulable Events on the probes no node takes (every "
        f"{UNPLACEABLE_EVERY}th): {len(ours)} objects, {sum(_count(e) for e in ours)} "
        "occurrences",
        f"- p99 last/first window: {p99_drift:.2f}x (at most {P99_DRIFT:g}x); RSS last/first: "
        f"{rss_drift:+.1%} (at most {RSS_DRIFT:+.0%})",
        f"- cache vs a fresh list at the end: "
        f"{'equal' if not differences else '; '.join(differences[:5])}",
        f"- holds: {'yes' if holds else 'NO'}",
    ]
    print("\n".join([*lines, "", *verdict]))
    if args.report:
        image = args.report.with_suffix(".png")
        plot(samples, started, rows, image)
        args.report.write_text(
            "# Soak\n\nGenerated by `make soak` (`python hack/soak.py "
            + " ".join(argv if argv is not None else sys.argv[1:])
            + f"`) at commit {commit()}, finished {finished}; rerun instead of editing.\n\n"
            + "\n".join([*lines, "", *verdict])
            + f"\n\n![latency and RSS over time]({image.name})\n"
        )
    return 0 if holds else 1


if __name__ == "__main__":
    sys.exit(main())
