"""Prometheus metrics: gpuclass_extender_*, base units, bounded labels (never node or pod)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from extender.state.cache import ClusterCache

PREFIX = "gpuclass_extender"
# Verb latency from 100 µs to 5 s (the scheduler's default httpTimeout).
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class Metrics:
    """All metrics of one server, in their own registry (tests get a fresh one each)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests by verb and status code",
            ["verb", "code"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time to answer a request, by verb",
            ["verb"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_filter_decisions",
            "Nodes judged by filter, by outcome and the rule that rejected them",
            ["outcome", "rule"],
            registry=r,
        )
        self.task_restarts = Counter(
            f"{PREFIX}_background_task_restarts",
            "Background tasks (watches, reloaders, expiry, the Event writer) restarted after "
            "a crash or an unexpected end",
            ["task"],
            registry=r,
        )
        self.tls_reloads = Counter(
            f"{PREFIX}_tls_reloads", "Serving certificate changes by result", ["result"], registry=r
        )
        self.admissions = Counter(
            f"{PREFIX}_admission_reviews",
            "Pod admission reviews (/mutate) by outcome",
            ["outcome"],
            registry=r,
        )
        self.binds = Counter(f"{PREFIX}_binds", "Bind calls by result", ["result"], registry=r)
        self.policy_reloads = Counter(
            f"{PREFIX}_policy_reloads", "Policy file reloads by result", ["result"], registry=r
        )
        self.policy_info = Gauge(
            f"{PREFIX}_policy_info", "The policy in force (value 1)", ["digest"], registry=r
        )
        self.cache_objects = Gauge(
            f"{PREFIX}_cache_objects", "Objects in the cluster cache", ["kind"], registry=r
        )
        self.cache_ready = Gauge(
            f"{PREFIX}_cache_ready", "1 once nodes and pods are listed and watched", registry=r
        )
        self.node_findings = Gauge(
            f"{PREFIX}_node_label_findings",
            "Nodes whose GPU labels need an admin's look (conflicts, unknown products)",
            registry=r,
        )
        self.class_gpus = Gauge(
            f"{PREFIX}_class_gpus",
            "GPUs per class (milli-GPU / 1000)",
            ["gpu_class", "state"],
            registry=r,
        )
        self.workload_gpus = Gauge(
            f"{PREFIX}_workload_gpus",
            "GPUs held by pods (bound or assumed) per GPU class and workload class",
            ["gpu_class", "workload"],
            registry=r,
        )
        self.colocated_gpus = Gauge(
            f"{PREFIX}_colocated_gpus",
            "GPUs of a workload class on nodes that also hold a workload class it avoids",
            ["workload"],
            registry=r,
        )
        self.watch_events = Counter(
            f"{PREFIX}_watch_events", "Watch events applied", ["kind"], registry=r
        )
        self.watch_relists = Counter(
            f"{PREFIX}_watch_relists",
            "Full lists (first sync and after 410 Gone)",
            ["kind"],
            registry=r,
        )
        self.watch_errors = Counter(
            f"{PREFIX}_watch_errors", "Failed list or watch calls", ["kind"], registry=r
        )
        self.cache_desyncs = Counter(
            f"{PREFIX}_cache_desyncs",
            "Times the cache stopped being in sync with the API server (/readyz 503 and the "
            "verbs answer 'not synced' until the next full list), by kind and cause: gone "
            "(410, history compacted) or error (the API failed mid-watch)",
            ["kind", "cause"],
            registry=r,
        )
        self.events = Counter(
            f"{PREFIX}_events",
            "Events about pods: recorded (created), aggregated (counted into a series), "
            "dropped (queue full), rate_limited (per-pod spam filter), failed (API error)",
            ["outcome"],
            registry=r,
        )
        self.assumed_expired = Counter(
            f"{PREFIX}_assumed_pods_expired",
            "Assumed bindings the watch never confirmed within the TTL",
            registry=r,
        )

    def observe(self, cache: ClusterCache, policy_digest: str) -> None:
        """Refresh the gauges that mirror policy and cache state (called on scrape)."""
        self.policy_info.clear()
        self.policy_info.labels(policy_digest).set(1)
        for kind, count in cache.counts().items():
            self.cache_objects.labels(kind).set(count)
        self.cache_ready.set(1 if cache.ready else 0)
        self.node_findings.set(sum(1 for n in cache.nodes() if n.findings))
        self.class_gpus.clear()
        for name in cache.policy.class_names:
            usage = cache.class_usage(name)
            self.class_gpus.labels(name, "capacity").set(usage.capacity / 1000)
            self.class_gpus.labels(name, "free").set(usage.free / 1000)
        self._observe_placements(cache)

    def _observe_placements(self, cache: ClusterCache) -> None:
        """Where each workload class's GPUs are, and how many share a node with a workload
        class they avoid (the co-location `simulate` reports, live)."""
        policy = cache.policy
        avoids = {name: rules.separation.avoid for name, rules in policy.workloads.items()}
        held: dict[tuple[str, str], int] = {}
        colocated = dict.fromkeys(policy.workloads, 0)
        for node in cache.nodes():
            if not node.held:
                continue
            gpu_class = node.gpu_class.name or "unclassified"
            for workload, milli in node.held.items():
                held[(gpu_class, workload)] = held.get((gpu_class, workload), 0) + milli
                if any(node.held.get(other, 0) > 0 for other in avoids.get(workload, ())):
                    colocated[workload] = colocated.get(workload, 0) + milli
        self.workload_gpus.clear()
        for (class_name, workload_name), milli in held.items():
            self.workload_gpus.labels(class_name, workload_name).set(milli / 1000)
        self.colocated_gpus.clear()
        for workload_name, milli in colocated.items():
            self.colocated_gpus.labels(workload_name).set(milli / 1000)
