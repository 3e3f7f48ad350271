"""The optional admission-webhook component on the cluster-scheduler variant: it renders,
validates against the schemas, and its webhook reaches the port the extender serves /mutate
on, with the settings docs/autoscaling.md explains."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from extender.cli.main import parser
from extender.server.app import DEFAULT_BUDGET_SECONDS
from tests.deploy.render import (
    MANIFESTS,
    NAMESPACE,
    SCHEMA_VERSIONS,
    container,
    find,
    render,
)
from tests.deploy.test_manifests import mounted_file

EXAMPLE = "examples/cluster-scheduler-with-webhook"
COMPONENT = MANIFESTS / "components" / "admission-webhook"

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return render(EXAMPLE)


@pytest.fixture(scope="module")
def webhook(objects: list[Obj]) -> Obj:
    (hook,) = find(objects, "MutatingWebhookConfiguration", "gpuclass-extender")["webhooks"]
    return dict(hook)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_the_component_renders_objects_that_validate_against_the_schemas(
    objects: list[Obj], version: str
) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_component_changes_only_the_extender_s_deployment_service_and_network_policy(
    objects: list[Obj],
) -> None:
    base = {(o["kind"], o["metadata"]["name"]): o for o in render("cluster-scheduler")}
    changed = {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if base.get((o["kind"], o["metadata"]["name"])) != o
    }
    assert changed == {
        ("MutatingWebhookConfiguration", "gpuclass-extender"),
        ("Deployment", "gpuclass-extender"),
        ("Service", "gpuclass-extender"),
        ("NetworkPolicy", "gpuclass-extender"),
    }
    assert len(objects) == len(base) + 1


def test_the_webhook_calls_the_port_the_extender_serves_mutate_on(
    objects: list[Obj], webhook: Obj
) -> None:
    extender, spec = container(objects, "extender")
    args = parser().parse_args(extender["args"])
    assert args.admission_port == 9443
    assert args.admission_host == "0.0.0.0"
    # The verbs keep their client-certificate check; the API server has no certificate,
    # which is why /mutate gets a port of its own.
    assert args.client_ca is not None
    assert args.tls_cert is not None
    target = webhook["clientConfig"]["service"]
    assert "url" not in webhook["clientConfig"]
    assert (target["name"], target["namespace"], target["path"]) == (
        "gpuclass-extender",
        NAMESPACE,
        "/mutate",
    )
    service = find(objects, "Service", target["name"])
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == target["port"]]
    named = {p["name"]: p["containerPort"] for p in extender["ports"]}
    assert named[port["targetPort"]] == args.admission_port
    # The CA cert-manager injects is the one of the Secret the extender serves from.
    secret = mounted_file(spec, extender, str(args.tls_cert), objects)[1]
    annotations = find(objects, "MutatingWebhookConfiguration")["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{secret}"


def test_the_webhook_admits_pods_when_it_is_down_and_answers_in_time(webhook: Obj) -> None:
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    # The extender answers (or gives up) within its request budget, before the API
    # server's timeout.
    assert DEFAULT_BUDGET_SECONDS < webhook["timeoutSeconds"] == 5
    (rule,) = webhook["rules"]
    assert rule["operations"] == ["CREATE"]
    assert (rule["apiGroups"], rule["resources"]) == ([""], ["pods"])


def test_the_webhook_never_gates_the_control_plane_or_the_extender_itself(webhook: Obj) -> None:
    (expression,) = webhook["namespaceSelector"]["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["operator"] == "NotIn"
    assert {"kube-system", NAMESPACE} <= set(expression["values"])
    opt_outs = {e["key"]: e for e in webhook["objectSelector"]["matchExpressions"]}
    assert opt_outs["app.kubernetes.io/part-of"]["values"] == ["gpuclass-extender"]


def test_the_webhook_port_is_reachable_through_the_network_policy(objects: list[Obj]) -> None:
    policy = find(objects, "NetworkPolicy", "gpuclass-extender")
    rules = {r["ports"][0]["port"]: r for r in policy["spec"]["ingress"]}
    assert set(rules) == {"https", "metrics", "webhook"}
    assert "from" not in rules["webhook"]
    assert "from" in rules["https"]  # the verbs stay restricted


def test_the_component_is_a_kustomize_component() -> None:
    import yaml

    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    for obj in yaml.safe_load_all((COMPONENT / "mutatingwebhookconfiguration.yaml").read_text()):
        for version in (SCHEMA_VERSIONS[0], SCHEMA_VERSIONS[-1]):
            kubernetes_validate.validate(obj, version, strict=True)
