#!/usr/bin/env bash
# End-to-end test of the second-scheduler deployment (manifests/second-scheduler) on kind.
#
#   hack/kind-e2e.sh [--keep] [--name NAME] [-- PYTEST_ARGS...]
#
# Creates a kind cluster (1 control plane + 3 workers), turns the workers into GPU nodes of
# three classes (GFD labels for H100 / A100-40GB / T4 and nvidia.com/gpu capacity patched into
# their status; no real GPUs, no device plugin), builds the image from ./Dockerfile and loads
# it into the nodes, applies `kubectl apply -k manifests/second-scheduler`, waits for the
# rollout, checks that two real pods land where the example policy sends them, returns the
# workers to plain nodes, then runs the integration suite against the cluster:
#
#   GPUCLASS_E2E_KUBECONFIG=<kind kubeconfig> .venv/bin/python -m pytest tests/integration
#
# (the suite makes its own kubelet-less nodes; tests that must restart or reconfigure the
# scheduler or extender skip themselves there). The cluster is deleted at the end, pass or
# fail, unless --keep is given; on failure the scheduler's pods, events and logs are printed
# first.
#
# Needs: bash >= 4.4, a running Docker engine, kind (CI uses v0.32.0, whose default node
# image is KIND_NODE_IMAGE below), kubectl >= 1.27, make and Python >= 3.11 (for .venv), and
# network access: kindest/node, registry.k8s.io (kube-scheduler, pause), PyPI (image build).
# It cannot run on machines without a Docker engine, such as this project's development and
# CI machines; there `make test` checks it with shellcheck only. GitHub Actions runs it:
# .github/workflows/kind-e2e.yml.
#
# Environment:
#   KIND_CLUSTER_NAME  cluster name (default gpuclass-e2e; --name overrides)
#   KIND_NODE_IMAGE    node image: the Kubernetes version under test
#   PYTHON             python with the dev dependencies (default .venv/bin/python, made by
#                      `make setup` if missing)
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_NAME="${KIND_CLUSTER_NAME:-gpuclass-e2e}"
# kind v0.32.0's default node image (pkg/apis/config/defaults/image.go): Kubernetes v1.36.1,
# the minor of the kube-scheduler image in manifests/second-scheduler.
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5}"
VARIANT="manifests/second-scheduler"
NAMESPACE="gpuclass-system"
SMOKE_NAMESPACE="gpuclass-e2e-smoke"
PAUSE_IMAGE="registry.k8s.io/pause:3.10"
KEEP=0
PYTEST_ARGS=()

while (($#)); do
  case "$1" in
    --keep) KEEP=1 ;;
    --name)
      [[ $# -ge 2 ]] || { echo "--name needs a value" >&2; exit 2; }
      CLUSTER_NAME="$2"
      shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$REPO"
STATE_DIR="$REPO/.cache/kind-e2e/$CLUSTER_NAME"  # /.cache/ is git-ignored
export KUBECONFIG="$STATE_DIR/kubeconfig"        # kind writes it, kubectl and the tests read it
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
CREATED=0

# Each step is announced, and every command is echoed (set -x) with this prefix.
PS4='+ kind-e2e: '
step() {
  { set +x; } 2>/dev/null
  echo
  echo "==> $*"
  set -x
}

diagnostics() {
  echo "==> diagnostics (the run failed)"
  kubectl get nodes -o wide
  kubectl -n "$NAMESPACE" get all,configmaps,leases,poddisruptionbudgets -o wide
  kubectl -n "$NAMESPACE" get events --sort-by=.lastTimestamp
  kubectl -n "$NAMESPACE" describe pods
  local pod
  for pod in $(kubectl -n "$NAMESPACE" get pods -o name); do
    kubectl -n "$NAMESPACE" logs "$pod" --all-containers --prefix --tail=300
  done
  kubectl -n "$SMOKE_NAMESPACE" describe pods
}

cleanup() {
  local status=$?
  set +e
  if ((CREATED)); then
    if ((status != 0)); then diagnostics; fi
    if ((KEEP)); then
      step "keeping cluster $CLUSTER_NAME (--keep)"
      { set +x; } 2>/dev/null
      echo "kubeconfig: $KUBECONFIG"
      echo "delete it with: kind delete cluster --name $CLUSTER_NAME"
    else
      step "deleting cluster $CLUSTER_NAME"
      kind delete cluster --name "$CLUSTER_NAME"
    fi
  fi
  { set +x; } 2>/dev/null
  if ((status == 0)); then echo "==> kind e2e passed"; else echo "==> kind e2e FAILED ($status)"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "checking tools: docker (engine), kind, kubectl"
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "$tool not found on PATH (see --help)" >&2; exit 1; }
done
if ! docker info --format 'Docker engine {{.ServerVersion}} on {{.OperatingSystem}}'; then
  echo "no Docker engine answers (docker info failed): this script needs one (see --help)" >&2
  exit 1
fi
kind version
kubectl version --client
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "a kind cluster named $CLUSTER_NAME exists already: delete it or pass --name" >&2
  exit 1
fi

step "python environment for the tests"
if [[ ! -x "$PYTHON" ]]; then
  make setup
fi
"$PYTHON" -m pytest --version

step "rendering $VARIANT: which extender image it runs"
mkdir -p "$STATE_DIR"
kubectl kustomize "$VARIANT" >"$STATE_DIR/rendered.yaml"
IMAGE="$(sed -n 's/^ *image: *\([^ ]*gpuclass-extender[^ ]*\) *$/\1/p' "$STATE_DIR/rendered.yaml" | sort -u)"
if [[ -z "$IMAGE" || "$IMAGE" == *$'\n'* ]]; then
  echo "expected exactly one gpuclass-extender image in $VARIANT, found: '$IMAGE'" >&2
  exit 1
fi
if grep -q 'imagePullPolicy: *Always' "$STATE_DIR/rendered.yaml"; then
  echo "$VARIANT sets imagePullPolicy: Always; a kind-loaded image needs IfNotPresent" >&2
  exit 1
fi

step "building $IMAGE from ./Dockerfile"
docker build --tag "$IMAGE" "$REPO"

step "creating kind cluster $CLUSTER_NAME ($KIND_NODE_IMAGE): 1 control plane, 3 workers"
cat >"$STATE_DIR/kind-config.yaml" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
- role: worker
EOF
CREATED=1
kind create cluster --name "$CLUSTER_NAME" --image "$KIND_NODE_IMAGE" \
  --config "$STATE_DIR/kind-config.yaml" --kubeconfig "$KUBECONFIG" --wait 180s
kubectl get nodes -o wide

step "turning the workers into GPU nodes: H100 x8, A100-40GB x8, T4 x4"
mapfile -t WORKERS < <(kubectl get nodes --selector '!node-role.kubernetes.io/control-plane' \
  --output 'jsonpath={range .items[*]}{.metadata.name}{"\n"}{end}' | sort)
if ((${#WORKERS[@]} != 3)); then
  echo "expected 3 workers, found ${#WORKERS[@]}: ${WORKERS[*]}" >&2
  exit 1
fi
# worker, GFD product label, GPU memory (MiB), GPU count
GPU_NODES=(
  "${WORKERS[0]} NVIDIA-H100-80GB-HBM3 81559 8"
  "${WORKERS[1]} NVIDIA-A100-SXM4-40GB 40960 8"
  "${WORKERS[2]} Tesla-T4 15360 4"
)
PREMIUM_NODE="${WORKERS[0]}"
ECONOMY_NODE="${WORKERS[2]}"
for entry in "${GPU_NODES[@]}"; do
  read -r node product memory count <<<"$entry"
  kubectl label node "$node" --overwrite \
    "nvidia.com/gpu.product=$product" \
    "nvidia.com/gpu.memory=$memory" \
    "nvidia.com/gpu.count=$count"
  # What a device plugin would advertise; the kubelet keeps extended resources it did not set.
  kubectl patch node "$node" --subresource=status --type=json --patch \
    "[{\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"$count\"},
      {\"op\": \"add\", \"path\": \"/status/allocatable/nvidia.com~1gpu\", \"value\": \"$count\"}]"
done
for entry in "${GPU_NODES[@]}"; do
  read -r node product memory count <<<"$entry"
  for _ in $(seq 60); do
    got="$(kubectl get node "$node" --output 'jsonpath={.status.allocatable.nvidia\.com/gpu}')"
    [[ "$got" == "$count" ]] && break
    sleep 1
  done
  [[ "$got" == "$count" ]] || { echo "$node: allocatable nvidia.com/gpu is '$got'" >&2; exit 1; }
done
kubectl get nodes --output custom-columns='NAME:.metadata.name,PRODUCT:.metadata.labels.nvidia\.com/gpu\.product,GPUS:.status.allocatable.nvidia\.com/gpu'

step "loading $IMAGE into the kind nodes"
kind load docker-image "$IMAGE" --name "$CLUSTER_NAME"

step "applying $VARIANT"
kubectl apply -k "$VARIANT"
mapfile -t DEPLOYMENTS < <(kubectl -n "$NAMESPACE" get deployments --output name)
((${#DEPLOYMENTS[@]} > 0)) || { echo "no Deployment in $NAMESPACE" >&2; exit 1; }
for deployment in "${DEPLOYMENTS[@]}"; do
  kubectl -n "$NAMESPACE" rollout status "$deployment" --timeout=300s
done
kubectl -n "$NAMESPACE" get pods -o wide

step "smoke: an interactive pod lands on the H100 worker, a batch pod on the T4 worker"
kubectl create namespace "$SMOKE_NAMESPACE"
smoke_pod() {  # name, workload class
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: $SMOKE_NAMESPACE
  labels:
    gpuclass.example.io/workload: $2
spec:
  schedulerName: gpu-scheduler
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: $PAUSE_IMAGE
    resources:
      requests: {cpu: 10m, memory: 16Mi, nvidia.com/gpu: "1"}
      limits: {nvidia.com/gpu: "1"}
EOF
}
smoke_pod smoke-interactive interactive | kubectl apply -f -
smoke_pod smoke-batch batch | kubectl apply -f -
for expected in "smoke-interactive $PREMIUM_NODE" "smoke-batch $ECONOMY_NODE"; do
  read -r pod node <<<"$expected"
  kubectl -n "$SMOKE_NAMESPACE" wait "pod/$pod" --for=condition=PodScheduled --timeout=120s
  got="$(kubectl -n "$SMOKE_NAMESPACE" get pod "$pod" --output 'jsonpath={.spec.nodeName}')"
  if [[ "$got" != "$node" ]]; then
    echo "$pod: bound to '$got', expected $node" >&2
    exit 1
  fi
done
kubectl -n "$SMOKE_NAMESPACE" get pods -o wide
kubectl -n "$SMOKE_NAMESPACE" delete pods --all --grace-period=0 --force --wait=true
kubectl delete namespace "$SMOKE_NAMESPACE" --wait=false

# The suite's headroom tests count every GPU of a class in the cluster, so from here on only
# the fake nodes each test makes may carry GPUs.
step "returning the workers to plain nodes (no GPU labels, no nvidia.com/gpu)"
for node in "${WORKERS[@]}"; do
  kubectl label node "$node" nvidia.com/gpu.product- nvidia.com/gpu.memory- nvidia.com/gpu.count-
  kubectl patch node "$node" --subresource=status --type=json --patch \
    '[{"op": "remove", "path": "/status/capacity/nvidia.com~1gpu"},
      {"op": "remove", "path": "/status/allocatable/nvidia.com~1gpu"}]'
done
kubectl get nodes --show-labels

step "integration suite against the cluster"
GPUCLASS_E2E_KUBECONFIG="$KUBECONFIG" "$PYTHON" -m pytest tests/integration "${PYTEST_ARGS[@]}"
