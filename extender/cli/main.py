"""The `gpuclass-extender` command: serve, validate-policy, explain, simulate."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from extender import logs
from extender.cli import live, simulate
from extender.errors import ExtenderError, PolicyError
from extender.policy.loader import load_policy_file
from extender.wire.codec import decode_pod_manifest


def _serve(args: argparse.Namespace) -> int:
    import uvloop

    from extender.server.app import DEFAULT_SCHEDULER_NAMES, Limits
    from extender.server.runtime import ServeOptions, serve

    logs.configure(args.log_level, args.log_format)
    try:
        options = ServeOptions(
            policy=args.policy,
            host=args.host,
            port=args.port,
            kubeconfig=args.kubeconfig,
            policy_poll_seconds=args.policy_poll_seconds,
            assume_ttl_seconds=args.assume_ttl_seconds,
            limits=Limits(
                max_body_bytes=args.max_body_bytes,
                max_concurrent=args.max_concurrent_requests,
                budget_seconds=args.request_budget_seconds,
            ),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            client_ca=args.client_ca,
            tls_poll_seconds=args.tls_poll_seconds,
            watch_timeout_seconds=args.watch_timeout_seconds,
            watch_stall_seconds=args.watch_stall_seconds,
            scheduler_names=frozenset(args.scheduler_name or DEFAULT_SCHEDULER_NAMES),
            health_host=args.health_host,
            health_port=args.health_port,
            admission_webhook=args.admission_webhook,
            admission_host=args.admission_host,
            admission_port=args.admission_port,
            events=args.events,
            scored_events=args.scored_events,
        )
    except ValueError as exc:  # options that contradict each other
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    try:
        uvloop.run(serve(options))
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def _validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        try:
            policy = load_policy_file(path)
        except PolicyError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        tiers = " > ".join(policy.class_names)
        print(
            f"{path}: ok (digest {policy.digest}; classes {tiers}; "
            f"workloads {', '.join(sorted(policy.workloads))})"
        )
    return status


def _policy_reference(args: argparse.Namespace) -> int:
    from extender.policy.reference import reference_markdown

    print(reference_markdown(), end="")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from extender.server.explain import explanation, explanation_table, gpu_facts_of

    manifest = _explain_manifest(args)
    if args.server:
        if manifest is None:
            raise ExtenderError(f"explain: {args.pod} is not a file; --server needs a manifest")
        data = _explain_remote(args.server, manifest, args.nodes)
    elif args.snapshot is not None:
        if manifest is None or args.policy is None:
            raise ExtenderError("explain --snapshot needs a pod manifest file and --policy FILE")
        from extender.cli.snapshot import load_snapshot
        from extender.policy.intent import pod_intent
        from extender.rules.engine import explain_nodes

        policy = load_policy_file(args.policy)
        cache = load_snapshot(args.snapshot, policy)
        names = args.nodes.split(",") if args.nodes else [n.name for n in cache.nodes()]
        pod = decode_pod_manifest(manifest)
        intent = pod_intent(pod, policy)
        verdicts = explain_nodes(intent, names, cache.node, cache, policy)
        data = explanation(intent, verdicts, policy, pod, gpu_facts_of(verdicts, cache.node))
    else:
        import asyncio

        from extender.cli.live import explain_in_cluster

        data = asyncio.run(explain_in_cluster(args, manifest))
    if args.output == "json":
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        print(explanation_table(data))
    return 0


def _explain_manifest(args: argparse.Namespace) -> bytes | None:
    """The manifest named by POD (a file or -), or None when POD names a pod in a cluster."""
    if args.pod == "-":
        return sys.stdin.buffer.read()
    path = Path(args.pod)
    if path.is_file():
        return path.read_bytes()
    if args.server or args.snapshot:
        raise ExtenderError(f"explain: {args.pod}: no such file")
    return None


def _explain_remote(server: str, manifest: bytes, nodes: str | None) -> Any:
    url = server.rstrip("/") + "/debug/explain" + (f"?nodes={nodes}" if nodes else "")
    request = urllib.request.Request(url, data=manifest, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ExtenderError(
            f"{url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}"
        ) from None
    except urllib.error.URLError as exc:
        raise ExtenderError(f"{url}: {exc.reason}") from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="gpuclass-extender",
        description="GPU-class affinity and workload-separation scheduler extender",
    )
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the extender HTTP server against a cluster")
    serve.add_argument("--policy", type=Path, required=True, help="policy YAML (hot-reloaded)")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    serve.add_argument("--port", type=int, default=8888)
    serve.add_argument("--kubeconfig", type=Path, help="default: in-cluster, else ~/.kube/config")
    serve.add_argument("--policy-poll-seconds", type=float, default=2.0)
    serve.add_argument(
        "--watch-timeout-seconds",
        type=int,
        default=300,
        help="renew each node and pod watch after this long (default 300)",
    )
    serve.add_argument(
        "--watch-stall-seconds",
        type=float,
        default=90.0,
        help="a watch silent this long has stalled: not synced, relist (default 90; the "
        "API server sends a bookmark about every minute)",
    )
    serve.add_argument("--assume-ttl-seconds", type=float, default=60.0)
    serve.add_argument(
        "--scheduler-name",
        action="append",
        help="bind only pods of this scheduler (repeatable; default gpu-scheduler)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=128 << 20,
        help="larger request bodies get 413 (default 128 MiB: 5,000 full Node objects)",
    )
    serve.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=64,
        help="verb requests in flight; the rest wait for a slot within the budget (default 64)",
    )
    serve.add_argument(
        "--request-budget-seconds",
        type=float,
        default=4.5,
        help="answer every verb within this, with an error if need be; keep it below the "
        "scheduler's httpTimeout (default 4.5)",
    )
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    serve.add_argument("--client-ca", type=Path, help="require client certificates from this CA")
    serve.add_argument(
        "--tls-poll-seconds",
        type=float,
        default=2.0,
        help="how often to look for a renewed certificate, key or CA (reloaded in place)",
    )
    serve.add_argument(
        "--health-port",
        type=int,
        help="also serve /healthz, /readyz and /metrics (only) over plain HTTP on this port",
    )
    serve.add_argument("--health-host", help="listen address of --health-port (default: --host)")
    serve.add_argument(
        "--admission-webhook",
        action="store_true",
        help="also serve POST /mutate, the mutating admission webhook that mirrors pods' "
        "GPU-class rules into node affinity for autoscalers (docs/autoscaling.md)",
    )
    serve.add_argument(
        "--admission-port",
        type=int,
        help="serve POST /mutate (and probes) on this TLS port, without asking for the "
        "client certificate --client-ca requires on --port (the API server presents none)",
    )
    serve.add_argument(
        "--admission-host", help="listen address of --admission-port (default: --host)"
    )
    serve.add_argument(
        "--events",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="record a GpuClassUnschedulable Event on a pod our filter leaves without a "
        "node, aggregated and rate-limited; needs create and patch on events.k8s.io events "
        "(default on)",
    )
    serve.add_argument(
        "--scored-events",
        action="store_true",
        help="also record a GpuClassScored Event on every pod prioritize scores: one API "
        "write per pod, for debugging (the decision record our bind writes on the pod "
        "says the same at no cost)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", default="auto", choices=["auto", "json", "text"])
    serve.set_defaults(run=_serve)

    validate = sub.add_parser("validate-policy", help="check policy files; exit 1 on any error")
    validate.add_argument("files", type=Path, nargs="+")
    validate.set_defaults(run=_validate)

    reference = sub.add_parser(
        "policy-reference", help="print the policy reference (Markdown) from the schema"
    )
    reference.set_defaults(run=_policy_reference)

    explain = sub.add_parser(
        "explain",
        help="why each node passes, fails or scores for a pod, best first: against the "
        "cluster of --kubeconfig (default), a running extender (--server) or a snapshot",
    )
    explain.add_argument(
        "pod",
        help="pod manifest (YAML or JSON), - for stdin, or the [NAMESPACE/]NAME of a pod "
        "in the cluster",
    )
    explain.add_argument("--namespace", "-n", default="default", help="of a pod given by name")
    explain.add_argument("--server", help="a running extender, e.g. http://127.0.0.1:8888")
    explain.add_argument("--snapshot", type=Path, help="nodes and pods YAML (kubectl get -o yaml)")
    live.add_cluster_arguments(explain)
    explain.add_argument("--nodes", help="comma-separated node names (default: all)")
    explain.add_argument("--output", "-o", default="table", choices=["table", "json"])
    explain.set_defaults(run=_explain)

    live.add_doctor_parser(sub)
    simulate.add_parser(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ExtenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
