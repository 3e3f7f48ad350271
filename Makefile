# One entry point for people and CI. `make demo` and `make test` are the README's commands.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup controlplane helm karpenter autoscaling lint test unit demo bench quality sim-to-real spread fuzz soak clean

setup: $(STAMP)

# Reinstall when the pinned dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# kube-apiserver, kube-scheduler and kubectl built from k8s.io/kubernetes, cached by version.
controlplane: setup
	PYTHON=$(BIN)/python bash hack/build-controlplane.sh >/dev/null

# helm v3.22.0 built from the Go module helm.sh/helm/v3 (Debian has no helm), cached by
# version; for the chart tests (tests/deploy/test_helm.py).
helm:
	bash hack/build-helm.sh >/dev/null

demo: controlplane
	$(BIN)/python hack/demo.py

lint: setup
	$(BIN)/ruff check extender tests hack
	$(BIN)/ruff format --check extender tests hack
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	$(BIN)/shellcheck hack/*.sh .ci/run
	$(BIN)/yamllint --strict manifests charts

# Tests that need no control plane.
unit: setup
	$(BIN)/python -m pytest -m "not integration"

# Karpenter v1.14.1's KWOK provider built from the Go module sigs.k8s.io/karpenter, cached
# by version, with its CRDs; for the autoscaling tests (tests/integration/test_karpenter.py).
karpenter:
	bash hack/build-karpenter.sh >/dev/null

# Everything, including the integration tier on a local kube-apiserver + kube-scheduler
# (and Karpenter's KWOK provider for the autoscaling tests).
test: lint controlplane helm karpenter
	$(BIN)/python -m pytest

# The autoscaling cases on a real Karpenter, their scale-up times and nodes written to
# docs/autoscaling-karpenter.md (tests/integration/test_karpenter.py records them).
autoscaling: controlplane karpenter
	rm -f hack/.autoscaling.jsonl
	GPUCLASS_AUTOSCALING_RECORD=hack/.autoscaling.jsonl \
	  $(BIN)/python -m pytest -p no:cacheprovider tests/integration/test_karpenter.py
	$(BIN)/python hack/autoscaling_report.py hack/.autoscaling.jsonl docs/autoscaling-karpenter.md
	rm -f hack/.autoscaling.jsonl

# Fuzzing (issue 9): 1,000,000 structure-aware and raw requests against a real `serve` on
# the local control plane, stopped after FUZZ_SECONDS; `make test` sends a 20,000 slice.
# Reproducible: FUZZ_SEED=... Writes docs/reliability-fuzz.md (verdict and thresholds included).
FUZZ_REQUESTS ?= 1000000
FUZZ_SECONDS ?= 3600
FUZZ_SEED ?= 20261126
fuzz: controlplane
	GPUCLASS_FUZZ_REQUESTS=$(FUZZ_REQUESTS) GPUCLASS_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  GPUCLASS_FUZZ_SEED=$(FUZZ_SEED) GPUCLASS_FUZZ_REPORT=docs/reliability-fuzz.md \
	  GPUCLASS_FUZZ_COMMAND="make fuzz FUZZ_REQUESTS=$(FUZZ_REQUESTS) FUZZ_SEED=$(FUZZ_SEED)" \
	  $(BIN)/python -m pytest -s -p no:cacheprovider tests/integration/test_fuzz.py

# Soak (issue 9, not in CI): 30 min of steady requests with node, pod and policy churn;
# writes docs/reliability-soak.md and its plot.
SOAK_ARGS ?= --minutes 30
soak: controlplane
	$(BIN)/python hack/soak.py $(SOAK_ARGS) --report docs/reliability-soak.md

# Benchmarks (issue 6): verb latency vs. the floor extender, in-process cost and profile,
# memory, and kube-scheduler throughput on the local control plane; ~20 min on 2 cores.
# Writes docs/benchmarks.md. Quick: make bench BENCH_ARGS=--quick (or --only latency,...).
bench: controlplane
	PYTHONPATH=hack $(BIN)/python -m bench $(BENCH_ARGS)

# Scheduling quality on the shipped openb traces, every model, seeds 42..51 (docs/quality.md);
# then the frontier: ours and FGD held to our wishes with the separation weight swept
# (docs/quality-frontier.md; the six traces with interactive and batch pods, seeds 42..44);
# then our packing alone, every wish off, against FGD (docs/quality-packing.md); then the
# one wish no point of the frontier drops, no GPU shared by interactive and batch pods,
# alone: ours and FGD held to it against default (docs/quality-gpu-separation.md).
OPENB := data/openb
TRACES := default gpushare40 gpushare100 multigpu20 cpu050 gpuspec10 gpuspec20
# Ours as shipped, the default scheduler, the paper's policies and the bound; the other
# models of ours (default+extender, extender-profile-exact) run with --models.
QUALITY_MODELS ?= default,extender-profile,random,dotprod,gpuclustering,gpupacking,bestfit,fgd,fgd+wishes
FRONTIER_TRACES ?= default gpushare40 gpushare100 cpu050 gpuspec10 gpuspec20
FRONTIER ?= 0,0.5,1,1.5,2,3,6,hard
FRONTIER_SEEDS ?= 42-44
SIMULATE := $(BIN)/gpuclass-extender simulate --nodes $(OPENB)/openb_node_list_gpu_node.csv \
	  --policy manifests/examples/openb-policy.yaml --jobs 2
quality: $(STAMP)
	$(SIMULATE) $(foreach t,$(TRACES),--pods $(OPENB)/openb_pod_list_$(t).csv) \
	  --models $(QUALITY_MODELS) --report docs/quality.md $(QUALITY_ARGS)
	$(SIMULATE) --mode timeline --pods $(OPENB)/openb_pod_list_default.csv \
	  --models default,default+extender,extender-profile,fgd --report docs/quality-timeline.md
	$(SIMULATE) $(foreach t,$(FRONTIER_TRACES),--pods $(OPENB)/openb_pod_list_$(t).csv) \
	  --models extender-profile,fgd+wishes --frontier $(FRONTIER) --seeds $(FRONTIER_SEEDS) \
	  --report docs/quality-frontier.md
	$(BIN)/gpuclass-extender simulate --nodes $(OPENB)/openb_node_list_gpu_node.csv \
	  --policy manifests/examples/openb-packing-only.yaml --jobs 2 \
	  --pods $(OPENB)/openb_pod_list_default.csv --pods $(OPENB)/openb_pod_list_gpushare100.csv \
	  --models extender-profile,extender-profile-exact,fgd --report docs/quality-packing.md
	$(BIN)/gpuclass-extender simulate --nodes $(OPENB)/openb_node_list_gpu_node.csv \
	  --policy manifests/examples/openb-gpu-separation-only.yaml --jobs 2 \
	  $(foreach t,$(FRONTIER_TRACES),--pods $(OPENB)/openb_pod_list_$(t).csv) \
	  --models default,fgd,extender-profile,fgd+wishes --seeds $(FRONTIER_SEEDS) \
	  --report docs/quality-gpu-separation.md

# The simulator against the real scheduler (issue 16): a slice of the openb default trace
# (240 nodes, its first pods up to 1.2x their GPUs, at most 2,000) through kube-scheduler
# with the shipped config and `serve`, and through the model; docs/sim-to-real.md. make test
# runs a 30-node slice (tests/integration/test_sim_to_real.py).
SIM_TO_REAL_ARGS ?= --nodes 240 --max-pods 2000
sim-to-real: controlplane
	$(BIN)/python hack/sim_to_real.py $(SIM_TO_REAL_ARGS) --report docs/sim-to-real.md

# One owner's interactive replicas, ours against kube-scheduler's default profile, on the
# real control plane (issue 16, goal 4: the openb trace carries no owners); docs/spread.md.
spread: controlplane
	$(BIN)/python hack/spread_report.py --report docs/spread.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
