"""Commands that read a live cluster once: `doctor`, and `explain` without --server."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import orjson
from kubernetes_asyncio import client

from extender.doctor.cluster import read_listing, report_of
from extender.doctor.findings import report_table
from extender.errors import ExtenderError
from extender.policy.compiled import Policy
from extender.policy.loader import load_policy_file, load_policy_text
from extender.server.explain import explanation, gpu_facts_of
from extender.state.cache import ClusterCache
from extender.state.kube import (
    DirectApi,
    api_client,
    list_nodes,
    list_pods,
    read_config_map_key,
    read_pod,
)
from extender.wire.codec import decode_node, decode_pod, decode_pod_manifest

DEFAULT_POLICY_CONFIGMAP = "gpuclass-system/gpuclass-policy:policy.yaml"


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", type=Path, help="default: in-cluster, else ~/.kube/config")
    parser.add_argument(
        "--policy",
        type=Path,
        help="policy YAML (default: the one the extender runs, from --policy-configmap)",
    )
    parser.add_argument(
        "--policy-configmap",
        default=DEFAULT_POLICY_CONFIGMAP,
        help=f"NAMESPACE/NAME:KEY of the policy (default {DEFAULT_POLICY_CONFIGMAP})",
    )


async def _policy(api: client.ApiClient, args: argparse.Namespace) -> Policy:
    if args.policy is not None:
        return load_policy_file(args.policy)
    where, _, key = str(args.policy_configmap).partition(":")
    namespace, _, name = where.partition("/")
    if not (namespace and name and key):
        raise ExtenderError(f"--policy-configmap {args.policy_configmap!r}: expected NS/NAME:KEY")
    text = await read_config_map_key(client.CoreV1Api(api), namespace=namespace, name=name, key=key)
    return load_policy_text(text, f"configmap {where} key {key}")


def doctor(args: argparse.Namespace) -> int:
    """Exit 1 when any finding is an error, so a pipeline can gate on it."""
    report = asyncio.run(_doctor(args))
    if args.output == "json":
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print(report_table(report))
    return 1 if report["summary"]["findings"]["error"] else 0


async def _doctor(args: argparse.Namespace) -> dict[str, Any]:
    api = await api_client(args.kubeconfig)
    try:
        policy = await _policy(api, args)
        return report_of(policy, await read_listing(api, args.templates or []))
    finally:
        await api.close()


async def explain_in_cluster(args: argparse.Namespace, manifest: bytes | None) -> dict[str, Any]:
    """Explain a pod (a manifest, or one the cluster holds) against the cluster as it is,
    through the same rules and cache the server uses."""
    from extender.policy.intent import pod_intent
    from extender.rules.engine import explain_nodes

    api = await api_client(args.kubeconfig)
    try:
        policy = await _policy(api, args)
        core = client.CoreV1Api(api)
        if manifest is not None:
            pod = decode_pod_manifest(manifest)
        else:
            namespace, _, name = str(args.pod).rpartition("/")
            direct = DirectApi(api)
            try:
                pod = await read_pod(direct, namespace=namespace or args.namespace, name=name)
            finally:
                await direct.close()
        raw_nodes, raw_pods = await list_nodes(core), await list_pods(core)
    finally:
        await api.close()
    cache = ClusterCache.of(
        policy,
        (decode_node(raw, i) for i, raw in enumerate(raw_nodes)),
        (decode_pod(raw, f"pod {i}") for i, raw in enumerate(raw_pods)),
    )
    names = args.nodes.split(",") if args.nodes else [n.name for n in cache.nodes()]
    intent = pod_intent(pod, policy)
    verdicts = explain_nodes(intent, names, cache.node, cache, policy)
    return explanation(intent, verdicts, policy, pod, gpu_facts_of(verdicts, cache.node))


def add_doctor_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "doctor",
        help="find mislabelled GPU nodes, stuck pods, autoscaler mismatches and policy "
        "problems in a live cluster (exit 1 on any error)",
    )
    add_cluster_arguments(parser)
    parser.add_argument(
        "--templates",
        type=Path,
        action="append",
        help="node templates kept outside the cluster: Karpenter NodePools, Cluster API "
        "node groups, or `aws autoscaling describe-auto-scaling-groups` JSON (repeatable)",
    )
    parser.add_argument("--output", "-o", default="table", choices=["table", "json"])
    parser.set_defaults(run=doctor)
