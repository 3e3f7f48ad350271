"""The FGD paper's published results on the shipped openb traces, the yardstick `simulate`
and hack/validate_reference.py compare against.

Source: data/README.md, from the FGD repository (hkust-adsl/kubernetes-scheduler-
simulator), `experiments/analysis/expected_results/analysis_allo_discrete.csv`.
"""

from __future__ import annotations

# Unallocated GPU % at 100% arrived, median of seeds 42..51 (data/README.md).
PUBLISHED: dict[str, dict[str, float]] = {
    "default": {
        "Random": 13.75,
        "DotProd": 9.44,
        "GpuClustering": 8.42,
        "GpuPacking": 8.19,
        "BestFit": 7.09,
        "FGD": 4.77,
    },
    "gpushare40": {
        "Random": 15.04,
        "DotProd": 10.66,
        "GpuClustering": 10.18,
        "GpuPacking": 10.19,
        "BestFit": 8.53,
        "FGD": 6.05,
    },
    "gpushare100": {
        "Random": 21.07,
        "DotProd": 17.93,
        "GpuClustering": 17.70,
        "GpuPacking": 17.78,
        "BestFit": 15.40,
        "FGD": 13.36,
    },
    "multigpu20": {
        "Random": 13.16,
        "DotProd": 8.19,
        "GpuClustering": 6.62,
        "GpuPacking": 6.49,
        "BestFit": 6.27,
        "FGD": 4.47,
    },
    "cpu050": {
        "Random": 11.02,
        "DotProd": 6.94,
        "GpuClustering": 6.52,
        "GpuPacking": 6.47,
        "BestFit": 6.42,
        "FGD": 5.00,
    },
    "gpuspec10": {
        "Random": 13.69,
        "DotProd": 9.75,
        "GpuClustering": 8.06,
        "GpuPacking": 7.77,
        "BestFit": 6.88,
        "FGD": 5.30,
    },
    "gpuspec20": {
        "Random": 13.91,
        "DotProd": 11.68,
        "GpuClustering": 10.87,
        "GpuPacking": 10.65,
        "BestFit": 11.53,
        "FGD": 5.31,
    },
}
