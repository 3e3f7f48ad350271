"""The manifests a cluster admin applies: both kustomize variants render, validate against
the Kubernetes OpenAPI schemas of every minor version we support, and agree with what the
tests run (scheduler config, policy, extender command line).

No control plane needed, only the kubectl that `make controlplane` builds (for rendering).
"""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from extender.cli.main import main, parser
from tests.deploy.render import (
    MANIFESTS,
    NAMESPACE,
    REPO,
    SCHEMA_VERSIONS,
    VARIANTS,
    Obj,
    assert_locked_down,
    container,
    containers,
    find,
    render,
)
from tests.integration.stack import (
    EXAMPLE_POLICY,
    SCHEDULER_CONFIG,
    SchedulerSettings,
    scheduler_config,
)

EXTENDER_IMAGE = "ghcr.io/example/gpuclass-extender"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    return {variant: render(variant) for variant in VARIANTS}


def mounted_file(spec: Obj, c: Obj, path: str, objects: list[Obj]) -> tuple[str, str]:
    """(volume source kind, object name) of the volume that provides file `path` in `c`;
    for ConfigMaps also checks the key exists in the rendered ConfigMap."""
    directory, _, key = path.rpartition("/")
    mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == directory]
    assert mounts, f"{c['name']}: nothing mounted at {directory} (for {path})"
    assert "subPath" not in mounts[0], f"{c['name']}: subPath mounts never see updates"
    volume = next(v for v in spec["volumes"] if v["name"] == mounts[0]["name"])
    if "configMap" in volume:
        name = volume["configMap"]["name"]
        assert key in find(objects, "ConfigMap", name)["data"], f"{name} has no key {key}"
        return "configMap", name
    if "secret" in volume:
        return "secret", volume["secret"]["secretName"]
    raise AssertionError(f"{path}: volume {volume['name']} is neither ConfigMap nor Secret")


# ---- schemas and lint -----------------------------------------------------------------------


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_objects_validate_against_the_kubernetes_schemas(
    rendered: dict[str, list[Obj]], variant: str, version: str
) -> None:
    for obj in rendered[variant]:
        # strict: unknown fields (misspellings) are errors too
        kubernetes_validate.validate(obj, version, strict=True)


def resource_files() -> list[Path]:
    """Every file a kustomization lists under `resources` (directories are other
    kustomizations)."""
    files = []
    for kustomization in sorted(MANIFESTS.glob("*/kustomization.yaml")):
        for entry in yaml.safe_load(kustomization.read_text()).get("resources", []):
            path = (kustomization.parent / entry).resolve()
            if path.is_file():
                files.append(path)
    return files


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_every_resource_file_validates_on_its_own(path: Path) -> None:
    for obj in yaml.safe_load_all(path.read_text()):
        for version in (SCHEMA_VERSIONS[0], SCHEMA_VERSIONS[-1]):
            kubernetes_validate.validate(obj, version, strict=True)


def test_schema_validation_catches_a_misspelled_field(rendered: dict[str, list[Obj]]) -> None:
    deployment = copy.deepcopy(find(rendered["second-scheduler"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = (
        True
    )
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFS"):
        kubernetes_validate.validate(deployment, SCHEMA_VERSIONS[0], strict=True)


def test_every_yaml_file_in_manifests_is_yamllint_clean() -> None:
    config = YamlLintConfig(file=str(REPO / ".yamllint"))
    files = sorted(MANIFESTS.rglob("*.yaml"))
    assert len(files) >= 10
    problems = [
        f"{path.relative_to(REPO)}:{p.line}:{p.column} {p.level} {p.message}"
        for path in files
        for p in linter.run(path.read_text(), config, str(path))
    ]
    assert problems == []


# ---- what the tests run is what users deploy -----------------------------------------------


def test_scheduler_configmap_is_the_file_the_integration_tests_run(
    rendered: dict[str, list[Obj]],
) -> None:
    objects = rendered["second-scheduler"]
    configmap = find(objects, "ConfigMap", "gpu-scheduler-config", hashed=True)
    shipped = configmap["data"]["scheduler-config.yaml"]
    assert shipped == SCHEDULER_CONFIG.read_text()  # byte for byte
    # The integration stack (tests/integration/stack.py) changes only the extender's port.
    sidecar_url = "http://127.0.0.1:8888"
    assert scheduler_config(sidecar_url, SchedulerSettings()) == yaml.safe_load(shipped)


def test_the_scheduler_reads_that_configmap_and_calls_its_sidecar(
    rendered: dict[str, list[Obj]],
) -> None:
    objects = rendered["second-scheduler"]
    scheduler, spec = container(objects, "kube-scheduler")
    argv = scheduler.get("command", []) + scheduler.get("args", [])
    config_path = next(a.split("=", 1)[1] for a in argv if a.startswith("--config="))
    kind, name = mounted_file(spec, scheduler, config_path, objects)
    assert kind == "configMap"
    config = yaml.safe_load(find(objects, "ConfigMap", name)["data"]["scheduler-config.yaml"])
    assert not any(a.startswith("--leader-elect=") for a in argv)  # the config decides
    assert config["leaderElection"]["leaderElect"] is True
    assert find(objects, "Deployment")["spec"]["replicas"] >= 2

    extender, _ = container(objects, "extender")
    args = parser().parse_args(extender["args"])
    assert config["extenders"][0]["urlPrefix"] == f"http://127.0.0.1:{args.port}"
    assert args.host == "127.0.0.1"  # the verbs (/bind!) only for the scheduler beside it
    assert args.tls_cert is None  # loopback: plain HTTP
    # /bind places only the pods of the scheduler beside it.
    assert args.scheduler_name == [config["profiles"][0]["schedulerName"]]
    # Only the health/metrics port is exposed, and the probes use it.
    assert [p["containerPort"] for p in extender["ports"]] == [args.health_port]
    for probe in ("livenessProbe", "readinessProbe"):
        assert extender[probe]["httpGet"]["port"] == args.health_port

    # The Lease it elects on is the one its Role lets it update.
    election = config["leaderElection"]
    role = find(objects, "Role", "gpu-scheduler-leader-election")
    assert role["metadata"]["namespace"] == election["resourceNamespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [election["resourceName"]],
            "verbs": ["get", "update"],
        }
    ]
    assert spec["serviceAccountName"] == "gpu-scheduler"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_policy_configmap_passes_validate_policy(
    rendered: dict[str, list[Obj]], variant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = rendered[variant]
    extender, spec = container(objects, "extender")
    args = parser().parse_args(extender["args"])
    kind, name = mounted_file(spec, extender, str(args.policy), objects)
    assert (kind, name) == ("configMap", "gpuclass-policy")
    text = find(objects, "ConfigMap", name)["data"][args.policy.name]
    assert text == EXAMPLE_POLICY.read_text()
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    assert main(["validate-policy", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_extender_command_line_is_accepted_by_serve(
    rendered: dict[str, list[Obj]], variant: str
) -> None:
    extender, _ = container(rendered[variant], "extender")
    assert "command" not in extender  # the image's entrypoint is gpuclass-extender
    try:
        args = parser().parse_args(extender["args"])
    except SystemExit:
        pytest.fail(f"gpuclass-extender {shlex.join(extender['args'])}: rejected by its parser")
    assert args.command == "serve"
    assert args.kubeconfig is None  # in-cluster ServiceAccount
    assert args.log_format == "json"


def test_the_tls_variant_serves_https_behind_its_service(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["cluster-scheduler"]
    extender, spec = container(objects, "extender")
    args = parser().parse_args(extender["args"])
    assert args.host == "0.0.0.0"
    for path in (args.tls_cert, args.tls_key, args.client_ca):
        assert path is not None
        assert mounted_file(spec, extender, str(path), objects) == (
            "secret",
            "gpuclass-extender-tls",
        )
    # No Secret with key material is shipped: the admin creates it.
    assert [o for o in objects if o["kind"] == "Secret"] == []

    service = find(objects, "Service", "gpuclass-extender")
    (port,) = service["spec"]["ports"]
    named = {p["name"]: p["containerPort"] for p in extender["ports"]}
    assert port["port"] == 443
    assert named[port["targetPort"]] == args.port == 8443
    assert spec["serviceAccountName"] == "gpuclass-extender"
    # kubelet has no client certificate: probes go to the plain health port, which the
    # Service does not expose.
    assert named["metrics"] == args.health_port != args.port
    for probe in ("livenessProbe", "readinessProbe"):
        assert extender[probe]["httpGet"]["port"] == args.health_port


def test_the_tls_variant_admits_only_the_control_plane_to_its_verbs(
    rendered: dict[str, list[Obj]],
) -> None:
    objects = rendered["cluster-scheduler"]
    extender, _ = container(objects, "extender")
    policy = find(objects, "NetworkPolicy", "gpuclass-extender")
    pod_labels = find(objects, "Deployment", "gpuclass-extender")["spec"]["template"]["metadata"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {r["ports"][0]["port"]: r for r in policy["spec"]["ingress"]}
    named = {p["name"] for p in extender["ports"]}
    assert set(rules) == named == {"https", "metrics"}
    # The verbs: only from a scheduler pod in kube-system or the control-plane CIDR.
    sources = rules["https"]["from"]
    assert {"ipBlock"} in [set(s) for s in sources]
    assert any(
        s.get("podSelector", {}).get("matchLabels") == {"component": "kube-scheduler"}
        for s in sources
    )
    # Probes and Prometheus: from anywhere (that port serves nothing else).
    assert "from" not in rules["metrics"]
    # /bind places only the cluster scheduler's pods.
    assert parser().parse_args(extender["args"]).scheduler_name == ["default-scheduler"]


def test_the_scheduler_snippet_calls_the_service_like_the_second_scheduler(
    rendered: dict[str, list[Obj]],
) -> None:
    snippet = yaml.safe_load(
        (MANIFESTS / "cluster-scheduler" / "kube-scheduler-config-snippet.yaml").read_text()
    )
    assert snippet["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert snippet["kind"] == "KubeSchedulerConfiguration"
    (entry,) = snippet["extenders"]
    (reference,) = yaml.safe_load(SCHEDULER_CONFIG.read_text())["extenders"]
    different = {"urlPrefix", "tlsConfig", "managedResources"}
    assert {k: v for k, v in entry.items() if k not in different} == {
        k: v for k, v in reference.items() if k not in different
    }
    # Every pod of the cluster would wait on us otherwise; a second scheduler gets only
    # the pods that name it, those without GPUs too (their CPU can strand GPUs).
    assert entry["managedResources"] == [{"name": "nvidia.com/gpu", "ignoredByScheduler": False}]
    assert "managedResources" not in reference
    service = find(rendered["cluster-scheduler"], "Service", "gpuclass-extender")
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert entry["urlPrefix"] == f"https://{host}:{service['spec']['ports'][0]['port']}"
    assert set(entry["tlsConfig"]) == {"caFile", "certFile", "keyFile"}


# ---- hardening --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_is_locked_down(rendered: dict[str, list[Obj]], variant: str) -> None:
    assert_locked_down(rendered[variant])


@pytest.mark.parametrize("variant", VARIANTS)
def test_images_are_pinned(rendered: dict[str, list[Obj]], variant: str) -> None:
    images = {c["image"] for _, c, _ in containers(rendered[variant])}
    assert any(image.startswith(EXTENDER_IMAGE + ":") for image in images)
    for image in images:
        name, _, digest = image.partition("@")
        tag = name.rsplit("/", 1)[-1].partition(":")[2]
        assert tag or digest.startswith("sha256:"), f"{image}: no tag or digest"
        assert tag != "latest", f"{image}: :latest is not a version"


@pytest.mark.parametrize("variant", VARIANTS)
def test_disruption_budget_and_selectors_match_the_pods(
    rendered: dict[str, list[Obj]], variant: str
) -> None:
    objects = rendered[variant]
    deployment = find(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        find(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"],
    ]
    selectors += [o["spec"]["selector"] for o in objects if o["kind"] == "Service"]
    selectors += [
        o["spec"]["podSelector"]["matchLabels"] for o in objects if o["kind"] == "NetworkPolicy"
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    assert (
        find(objects, "PodDisruptionBudget")["spec"]["minAvailable"]
        < deployment["spec"]["replicas"]
    )


# ---- RBAC: least privilege --------------------------------------------------------------------

EXTENDER_RULES = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/binding"], "verbs": ["create"]},
    {"apiGroups": ["karpenter.sh"], "resources": ["nodepools"], "verbs": ["list"]},
    {
        "apiGroups": ["cluster.x-k8s.io"],
        "resources": ["machinedeployments", "machinesets", "machinepools"],
        "verbs": ["list"],
    },
    # ApiEventSink: create an Event, merge-patch its series; no get/list/update/delete.
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_rbac_is_least_privilege(rendered: dict[str, list[Obj]], variant: str) -> None:
    objects = rendered[variant]
    # Exactly the calls in extender/state/watch.py, extender/state/kube.py and the doctor.
    assert find(objects, "ClusterRole", "gpuclass-extender")["rules"] == EXTENDER_RULES
    for role in (o for o in objects if o["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: {rule}"
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    bound = {o["roleRef"]["name"] for o in objects if o["kind"].endswith("RoleBinding")}
    allowed = {
        "gpuclass-extender",
        "system:kube-scheduler",
        "system:volume-scheduler",
        "extension-apiserver-authentication-reader",
        "gpu-scheduler-leader-election",
    }
    assert bound <= allowed
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert namespace is None
        elif obj["metadata"]["name"] == "gpu-scheduler-authentication-reader":
            assert namespace == "kube-system"
        else:
            assert namespace == NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}"


def test_the_sidecar_identity_gets_the_extender_rules(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["second-scheduler"]
    binding = find(objects, "ClusterRoleBinding", "gpuclass-extender")
    subjects = {(s["kind"], s["namespace"], s["name"]) for s in binding["subjects"]}
    assert ("ServiceAccount", NAMESPACE, "gpu-scheduler") in subjects
    scheduler_bindings = {
        o["roleRef"]["name"]
        for o in objects
        if o["kind"].endswith("RoleBinding")
        and any(s["name"] == "gpu-scheduler" for s in o["subjects"])
    }
    assert scheduler_bindings == {
        "gpuclass-extender",
        "system:kube-scheduler",
        "system:volume-scheduler",
        "extension-apiserver-authentication-reader",
        "gpu-scheduler-leader-election",
    }
