"""The Helm chart (charts/gpuclass-extender): `helm lint --strict` passes, its renderings
validate against the Kubernetes schemas of every minor version we support, its defaults
render exactly the kustomize variants, bad values fail with a readable error, every value
is documented, and the values reach the objects.

No control plane needed, only the helm that `make helm` builds (and the kubectl of
`make controlplane` for the kustomize side of the comparison).
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from extender.cli.main import parser
from extender.server.app import DEFAULT_BUDGET_SECONDS
from tests.deploy.render import (
    CHART,
    HELM_VERSION,
    NAMESPACE,
    REPO,
    SCHEMA_VERSIONS,
    VARIANTS,
    Obj,
    assert_locked_down,
    container,
    find,
    helm_template,
    render,
    run_helm,
)
from tests.deploy.test_admission_component import EXAMPLE

# Labels helm's conventions add on top of manifests/'s (which carry part-of only).
HELM_LABELS = {
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}
KUSTOMIZE_HASH = re.compile(r"-[a-z0-9]{10}$")
# Every optional object and branch on: what the schema and lint tests check besides the
# defaults.
EVERYTHING_ON: Obj = {
    "namespace": {"create": True},
    "extender": {
        "logLevel": "debug",
        "maxConcurrentRequests": 32,
        "requestBudgetSeconds": 4.0,
        "maxBodyBytes": 1 << 20,
        "extraArgs": ["--assume-ttl-seconds", "90"],
    },
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
    "networkPolicy": {
        "metricsFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ]
    },
    "serviceMonitor": {
        "enabled": True,
        "labels": {"release": "prometheus"},
        "scrapeTimeout": "10s",
    },
}
# The fields of monitoring.coreos.com/v1 ServiceMonitor the chart writes, as the Prometheus
# Operator's CRD defines them (kubernetes-validate knows no CRDs); closed, so that a
# misspelled field fails as strict validation would.
SERVICE_MONITOR_SCHEMA: Obj = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"$ref": "#/definitions/duration"},
                            "scrapeTimeout": {"$ref": "#/definitions/duration"},
                        },
                    },
                },
            },
        },
    },
    "definitions": {
        "duration": {
            "type": "string",
            "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
            "(([0-9]+)s)?(([0-9]+)ms)?)$",
        }
    },
}


def mode(name: str, **values: Any) -> Obj:
    return {"mode": name, **values}


@pytest.fixture(scope="module")
def defaults() -> dict[str, list[Obj]]:
    return {variant: helm_template(mode(variant)) for variant in VARIANTS}


@pytest.fixture(scope="module")
def everything_on() -> dict[str, list[Obj]]:
    return {variant: helm_template(mode(variant, **EVERYTHING_ON)) for variant in VARIANTS}


def core_objects(objects: list[Obj]) -> Iterator[Obj]:
    """The objects kubernetes-validate has schemas for (all but the CRD)."""
    return (o for o in objects if o["apiVersion"] != "monitoring.coreos.com/v1")


# ---- lint and schemas ---------------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, EVERYTHING_ON], ids=["defaults", "everything-on"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict_passes(variant: str, values: Obj) -> None:
    result = run_helm("lint", "--strict", "-n", NAMESPACE, values=mode(variant, **values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_chart_validates_against_the_kubernetes_schemas(
    defaults: dict[str, list[Obj]],
    everything_on: dict[str, list[Obj]],
    variant: str,
    version: str,
) -> None:
    for obj in core_objects(defaults[variant] + everything_on[variant]):
        # strict: unknown fields (misspellings) are errors too
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_service_monitor_validates_against_its_crd_fields(
    everything_on: dict[str, list[Obj]], variant: str
) -> None:
    monitor = find(everything_on[variant], "ServiceMonitor")
    jsonschema.validate(monitor, SERVICE_MONITOR_SCHEMA)
    misspelled = copy.deepcopy(monitor)
    misspelled["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.validate(misspelled, SERVICE_MONITOR_SCHEMA)


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (mode("second-schedular"), "at '/mode': value must be one of 'second-scheduler'"),
        ({"replica": 3}, "additional properties 'replica' not allowed"),
        ({"extender": {"image": {"tag": 1.0}}}, "at '/extender/image/tag'"),
        ({"scheduler": {"name": "GPU_Scheduler"}}, "at '/scheduler/name'"),
        (
            {"podDisruptionBudget": {"minAvailable": "half"}},
            "at '/podDisruptionBudget/minAvailable'",
        ),
    ],
    ids=["mode-typo", "unknown-key", "numeric-tag", "bad-name", "bad-min-available"],
)
@pytest.mark.parametrize("command", ["lint", "template"])
def test_the_values_schema_rejects_bad_values_readably(
    command: str, values: Obj, error: str
) -> None:
    result = run_helm(command, "--strict" if command == "lint" else "--debug", values=values)
    assert result.returncode != 0
    assert error in result.stdout + result.stderr


def test_every_value_is_documented_by_a_comment() -> None:
    """Each key in values.yaml has a comment on its own line or on the lines just above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    root = yaml.compose("\n".join(lines))
    assert isinstance(root, yaml.MappingNode)
    undocumented = []
    keys = 0

    def walk(node: yaml.MappingNode, path: str) -> None:
        nonlocal keys
        for key, value in node.value:
            keys += 1
            line = key.start_mark.line
            name = f"{path}{key.value}"
            inline = "#" in lines[line].partition(": ")[2]
            above = lines[line - 1].strip().startswith("#") if line else False
            if not (inline or above):
                undocumented.append(f"values.yaml:{line + 1} {name}")
            if isinstance(value, yaml.MappingNode):
                walk(value, f"{name}.")

    walk(root, "")
    assert keys >= 30
    assert undocumented == []


def test_the_build_script_builds_the_helm_the_tests_run() -> None:
    script = (REPO / "hack" / "build-helm.sh").read_text()
    assert f'HELM_VERSION="${{HELM_VERSION:-{HELM_VERSION}}}"' in script


# ---- the same defaults as manifests/ ------------------------------------------------------


def normalised(objects: list[Obj]) -> dict[tuple[str, str, str], Obj]:
    """Objects by (kind, namespace, name), without what only one of the tools writes:
    helm's labels, the pods' checksum annotations, kustomize's ConfigMap name hashes."""

    def unhashed(name: str, hashed_names: set[str]) -> str:
        return KUSTOMIZE_HASH.sub("", name) if name in hashed_names else name

    hashed = {
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "ConfigMap" and KUSTOMIZE_HASH.search(o["metadata"]["name"])
    }
    result = {}
    for original in objects:
        obj = copy.deepcopy(original)
        metadata = obj["metadata"]
        for label in HELM_LABELS:
            metadata.get("labels", {}).pop(label, None)
        if obj["kind"] == "ConfigMap":
            metadata["name"] = unhashed(metadata["name"], hashed)
        template = obj.get("spec", {}).get("template", {})
        annotations = template.get("metadata", {}).get("annotations", {})
        for key in [k for k in annotations if k.startswith("checksum/")]:
            del annotations[key]
        if template and not annotations:
            template["metadata"].pop("annotations", None)
        for volume in template.get("spec", {}).get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["name"] = unhashed(volume["configMap"]["name"], hashed)
        key = (obj["kind"], metadata.get("namespace", ""), metadata["name"])
        assert key not in result, f"two objects {key}"
        result[key] = obj
    return result


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_default_rendering_is_the_kustomize_variant(
    defaults: dict[str, list[Obj]], variant: str
) -> None:
    kustomize = normalised(render(variant))
    # `helm install --create-namespace` makes the namespace (namespace.create: false).
    kustomize.pop(("Namespace", "", NAMESPACE))
    assert normalised(defaults[variant]) == kustomize


def test_namespace_create_renders_the_kustomize_namespace() -> None:
    (namespace,) = [
        o for o in helm_template({"namespace": {"create": True}}) if o["kind"] == "Namespace"
    ]
    kustomize = normalised(render("second-scheduler"))[("Namespace", "", NAMESPACE)]
    assert normalised([namespace]) == {("Namespace", "", NAMESPACE): kustomize}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_stays_locked_down_with_every_option_on(
    everything_on: dict[str, list[Obj]], variant: str
) -> None:
    assert_locked_down(everything_on[variant])


# ---- values reach the objects -------------------------------------------------------------


def extender_args(objects: list[Obj]) -> list[str]:
    extender, _ = container(objects, "extender")
    args: list[str] = extender["args"]
    return args


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_extender_options_become_flags_serve_accepts(
    everything_on: dict[str, list[Obj]], variant: str
) -> None:
    args = parser().parse_args(extender_args(everything_on[variant]))
    assert args.log_level == "debug"
    assert args.max_concurrent_requests == 32
    assert args.request_budget_seconds == 4.0
    assert args.max_body_bytes == 1 << 20
    assert args.assume_ttl_seconds == 90.0


def test_a_renamed_scheduler_keeps_config_lease_rbac_and_sidecar_together() -> None:
    objects = helm_template({"scheduler": {"name": "gpu-scheduler-b"}})
    config = yaml.safe_load(
        find(objects, "ConfigMap", "gpu-scheduler-b-config")["data"]["scheduler-config.yaml"]
    )
    assert config["profiles"][0]["schedulerName"] == "gpu-scheduler-b"
    assert config["leaderElection"]["resourceName"] == "gpu-scheduler-b"
    role = find(objects, "Role", "gpu-scheduler-b-leader-election")
    assert role["rules"][0]["resourceNames"] == ["gpu-scheduler-b"]
    assert parser().parse_args(extender_args(objects)).scheduler_name == ["gpu-scheduler-b"]
    deployment = find(objects, "Deployment", "gpu-scheduler-b")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "gpu-scheduler-b"


def checksums(objects: list[Obj]) -> dict[str, str]:
    annotations: dict[str, str] = find(objects, "Deployment")["spec"]["template"]["metadata"].get(
        "annotations", {}
    )
    return annotations


def test_a_scheduler_config_change_rolls_the_pods_a_policy_change_does_not(
    defaults: dict[str, list[Obj]],
) -> None:
    """kube-scheduler reads its config only at startup; the extender re-reads the policy
    file every 2 s, so a new policy must not restart the scheduler pods."""
    before = checksums(defaults["second-scheduler"])
    assert set(before) == {"checksum/scheduler-config"}
    new_policy = helm_template({"policy": {"inline": "apiVersion: gpuclass.example.io/v1alpha1\n"}})
    assert checksums(new_policy) == before
    assert find(new_policy, "ConfigMap", "gpuclass-policy")["data"]["policy.yaml"] == (
        "apiVersion: gpuclass.example.io/v1alpha1\n"
    )
    assert checksums(helm_template({"scheduler": {"name": "other"}})) != before


@pytest.mark.parametrize("variant", VARIANTS)
def test_an_existing_policy_configmap_is_mounted_instead(variant: str) -> None:
    objects = helm_template(mode(variant, policy={"existingConfigMap": "my-policy"}))
    configmaps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    assert "gpuclass-policy" not in configmaps
    _, spec = container(objects, "extender")
    assert {"name": "policy", "configMap": {"name": "my-policy"}} in spec["volumes"]


def test_client_verification_and_the_tls_secret_are_values() -> None:
    objects = helm_template(
        mode(
            "cluster-scheduler",
            clusterScheduler={
                "tls": {"secretName": "my-tls", "verifyClients": False},
                "schedulerNames": ["default-scheduler", "gpu"],
            },
        )
    )
    args = parser().parse_args(extender_args(objects))
    assert args.client_ca is None
    assert args.scheduler_name == ["default-scheduler", "gpu"]
    _, spec = container(objects, "extender")
    (tls,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == "my-tls"


@pytest.mark.parametrize("variant", VARIANTS)
def test_optional_objects_can_be_turned_off(variant: str) -> None:
    objects = helm_template(
        mode(variant, podDisruptionBudget={"enabled": False}, networkPolicy={"enabled": False})
    )
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "Namespace"}


# ---- ServiceMonitor ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_service_monitor_renders_only_when_enabled(
    defaults: dict[str, list[Obj]], everything_on: dict[str, list[Obj]], variant: str
) -> None:
    assert [o for o in defaults[variant] if o["kind"] == "ServiceMonitor"] == []
    assert len([o for o in everything_on[variant] if o["kind"] == "ServiceMonitor"]) == 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_service_monitor_scrapes_the_extenders_metrics_port(
    everything_on: dict[str, list[Obj]], variant: str
) -> None:
    objects = everything_on[variant]
    monitor = find(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        o
        for o in objects
        if o["kind"] == "Service" and selector.items() <= o["metadata"]["labels"].items()
    ]
    (service,) = services  # not the verbs' Service (cluster-scheduler)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == "http"
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]

    # The Service sends that port to the extender's plain health port (/metrics is there).
    deployment = find(objects, "Deployment")
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    extender, _ = container(objects, "extender")
    named = {p["name"]: p["containerPort"] for p in extender["ports"]}
    health_port = parser().parse_args(extender["args"]).health_port
    assert named[port["targetPort"]] == health_port

    # The NetworkPolicy admits the scrapes, from the configured peers only.
    policy = find(objects, "NetworkPolicy")
    (rule,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "metrics"]
    assert rule["from"] == EVERYTHING_ON["networkPolicy"]["metricsFrom"]


def test_the_second_scheduler_opens_its_metrics_port_only_for_scraping(
    defaults: dict[str, list[Obj]],
) -> None:
    policy = find(defaults["second-scheduler"], "NetworkPolicy")
    assert "ingress" not in policy["spec"]  # deny all
    scraped = helm_template({"serviceMonitor": {"enabled": True}})
    (rule,) = find(scraped, "NetworkPolicy")["spec"]["ingress"]
    assert rule == {"ports": [{"port": "metrics", "protocol": "TCP"}]}


# ---- admission webhook ---------------------------------------------------------------------

# The chart's form of manifests/examples/cluster-scheduler-with-webhook.
WEBHOOK_ON: Obj = mode("cluster-scheduler", admissionWebhook={"enabled": True})
# Every admissionWebhook value changed from its default.
WEBHOOK_TUNED: Obj = mode(
    "cluster-scheduler",
    admissionWebhook={
        "enabled": True,
        "port": 9000,
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "excludeNamespaces": ["kube-system", "gpuclass-system", "monitoring"],
        "caBundle": base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode(),
    },
)


SECOND_SCHEDULER_WEBHOOK = (
    "admissionWebhook.enabled needs mode cluster-scheduler: in mode second-scheduler the"
    " extender is a sidecar on loopback, which the API server cannot reach"
)


@pytest.fixture(scope="module")
def webhook_on() -> list[Obj]:
    return helm_template(WEBHOOK_ON)


@pytest.fixture(scope="module")
def webhook_tuned() -> list[Obj]:
    return helm_template(WEBHOOK_TUNED)


def only_webhook(objects: list[Obj]) -> Obj:
    (hook,) = find(objects, "MutatingWebhookConfiguration", "gpuclass-extender")["webhooks"]
    webhook: Obj = hook
    return webhook


def test_the_admission_webhook_rendering_is_the_kustomize_example(
    webhook_on: list[Obj],
) -> None:
    kustomize = normalised(render(EXAMPLE))
    kustomize.pop(("Namespace", "", NAMESPACE))
    assert normalised(webhook_on) == kustomize


@pytest.mark.parametrize("values", [WEBHOOK_ON, WEBHOOK_TUNED], ids=["enabled", "tuned"])
def test_helm_lint_strict_passes_with_the_admission_webhook(values: Obj) -> None:
    result = run_helm("lint", "--strict", "-n", NAMESPACE, values=values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_the_admission_webhook_rendering_validates_against_the_kubernetes_schemas(
    webhook_on: list[Obj], webhook_tuned: list[Obj], version: str
) -> None:
    for obj in webhook_on + webhook_tuned:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_webhook_values_reach_the_webhook_and_the_extender(webhook_tuned: list[Obj]) -> None:
    webhook = only_webhook(webhook_tuned)
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["timeoutSeconds"] == 10
    # The extender's own namespace stays excluded, once.
    (expression,) = webhook["namespaceSelector"]["matchExpressions"]
    assert expression["values"] == ["kube-system", "monitoring", NAMESPACE]
    # An explicit CA replaces cert-manager's injection.
    client = webhook["clientConfig"]
    assert client["caBundle"] == WEBHOOK_TUNED["admissionWebhook"]["caBundle"]
    configuration = find(webhook_tuned, "MutatingWebhookConfiguration")
    assert "annotations" not in configuration["metadata"]
    # The port: the extender serves /mutate there, the Service forwards to it.
    extender, _ = container(webhook_tuned, "extender")
    args = parser().parse_args(extender["args"])
    assert args.admission_port == 9000
    service = find(webhook_tuned, "Service", client["service"]["name"])
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == client["service"]["port"]]
    named = {p["name"]: p["containerPort"] for p in extender["ports"]}
    assert named[port["targetPort"]] == args.admission_port == 9000


def test_the_ca_is_injected_from_a_named_certificate() -> None:
    objects = helm_template(
        mode("cluster-scheduler", admissionWebhook={"enabled": True, "caInjectFrom": "my-cert"})
    )
    annotations = find(objects, "MutatingWebhookConfiguration")["metadata"]["annotations"]
    assert annotations == {"cert-manager.io/inject-ca-from": f"{NAMESPACE}/my-cert"}


def test_the_webhook_times_out_after_the_extender_s_request_budget(
    webhook_on: list[Obj],
) -> None:
    assert only_webhook(webhook_on)["timeoutSeconds"] > DEFAULT_BUDGET_SECONDS


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"admissionWebhook": {"enabled": True}}, SECOND_SCHEDULER_WEBHOOK),
        (
            mode("cluster-scheduler", admissionWebhook={"failurePolicy": "Never"}),
            "at '/admissionWebhook/failurePolicy': value must be one of 'Ignore', 'Fail'",
        ),
        (
            mode("cluster-scheduler", admissionWebhook={"caBundle": "not base64!"}),
            "at '/admissionWebhook/caBundle'",
        ),
    ],
    ids=[
        "second-scheduler",
        "failure-policy-typo",
        "ca-bundle-not-base64",
    ],
)
@pytest.mark.parametrize("command", ["lint", "template"])
def test_a_misconfigured_webhook_fails_readably(command: str, values: Obj, error: str) -> None:
    result = run_helm(command, "--strict" if command == "lint" else "--debug", values=values)
    assert result.returncode != 0
    assert error in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (
            mode("cluster-scheduler", admissionWebhook={"enabled": True, "timeoutSeconds": 4}),
            "admissionWebhook.timeoutSeconds (4) must exceed the extender's request budget",
        ),
        (
            mode(
                "cluster-scheduler",
                admissionWebhook={"enabled": True, "timeoutSeconds": 5},
                extender={"requestBudgetSeconds": 6.0},
            ),
            "admissionWebhook.timeoutSeconds (5) must exceed the extender's request budget",
        ),
        (
            mode("cluster-scheduler", admissionWebhook={"enabled": True, "port": 8443}),
            "admissionWebhook.port (8443) must differ from the extender's other ports",
        ),
    ],
    ids=["timeout-below-budget", "budget-raised-above-timeout", "port-clash"],
)
def test_webhook_values_that_contradict_the_extender_s_fail_to_render(
    values: Obj, error: str
) -> None:
    """Checks across values, in the template (`helm lint` only logs a template's `fail`)."""
    result = run_helm("template", values=values)
    assert result.returncode != 0
    assert error in result.stderr


def test_the_webhook_fails_in_second_scheduler_mode_even_without_the_schema() -> None:
    """helm lint ignores a template's `fail`; the schema says it first, the template
    still refuses when the schema is skipped."""
    result = run_helm(
        "template", "--skip-schema-validation", values={"admissionWebhook": {"enabled": True}}
    )
    assert result.returncode != 0
    assert SECOND_SCHEDULER_WEBHOOK in result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_disabled_webhook_renders_no_webhook_objects_ports_or_flags(
    defaults: dict[str, list[Obj]], everything_on: dict[str, list[Obj]], variant: str
) -> None:
    for objects in (defaults[variant], everything_on[variant]):
        assert "MutatingWebhookConfiguration" not in {o["kind"] for o in objects}
        extender, _ = container(objects, "extender")
        assert parser().parse_args(extender["args"]).admission_port is None
        assert "webhook" not in {p["name"] for p in extender["ports"]}
        for obj in objects:
            if obj["kind"] == "Service":
                assert "webhook" not in {p["name"] for p in obj["spec"]["ports"]}
            if obj["kind"] == "NetworkPolicy":
                ports = [p["port"] for r in obj["spec"].get("ingress", []) for p in r["ports"]]
                assert "webhook" not in ports
