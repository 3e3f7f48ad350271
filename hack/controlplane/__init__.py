"""The local control plane by job; `localcluster` (hack/localcluster.py) is its public face."""
