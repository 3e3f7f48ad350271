# The gpuclass-extender image.
#
#   docker build -t ghcr.io/example/gpuclass-extender:0.1.0 .
#   docker run --rm --read-only --user 65532 ghcr.io/example/gpuclass-extender:0.1.0 --help
#
# Two stages from the same base image, so the venv built in the first runs unchanged in the
# second (its bin/python is a symlink to the base's /usr/local/bin/python3.11):
#   builder  installs the project and its pinned dependencies (pyproject.toml, no dev extras)
#            into /opt/venv, compiles every module to bytecode and removes pip/setuptools;
#   runtime  the base plus /opt/venv, running as 65532:65532. It writes nothing at run time
#            (read-only root filesystem), needs no shell (exec-form ENTRYPOINT) and has no
#            HEALTHCHECK: Kubernetes probes /healthz and /readyz.
#
# Base: the official Python 3.11 slim image on Debian 12 (bookworm). 3.11 is the project's
# minimum and the Python its CI and mypy target. Pinned by tag and by the digest of the
# tag's multi-architecture index (linux/amd64 and linux/arm64 both resolve through it). To
# move it, change tag and digest together, e.g. from
# `docker buildx imagetools inspect python:3.11-slim-bookworm`; or override for one build:
# `docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm .`.
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# ---- builder -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

# Build tools, pinned; they stay in this stage.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir pip==26.3 setuptools==84.2.1

WORKDIR /src

# Dependencies first, read from pyproject.toml's [project] dependencies (the pinned runtime
# set; dev extras are not installed). Wheels only: the slim image has no compiler, and every
# pinned dependency ships wheels for linux amd64 and arm64. This layer is reused while
# pyproject.toml is unchanged.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' >requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir --no-compile --only-binary=:all: -r requirements.txt

# The project itself (README.md is its package description), then: check that the installed
# set is consistent, drop the build tools, and compile everything to bytecode once. Hash-based
# .pyc files (unchecked) do not depend on file times, so they stay valid after COPY.
COPY README.md ./
COPY extender ./extender
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib \
 && /opt/venv/bin/gpuclass-extender --help >/dev/null

# ---- runtime -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="gpuclass-extender" \
      org.opencontainers.image.description="GPU-class affinity and workload-separation scheduler extender for Kubernetes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The base image ships the standard library without bytecode; compile it here, so that
# start-up loads .pyc files instead of compiling in memory on every start (nothing can be
# cached at run time on a read-only root filesystem). Exec form: no shell involved.
RUN ["/usr/local/bin/python", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", "-x", "/site-packages/", "/usr/local/lib/python3.11"]

COPY --from=builder /opt/venv /opt/venv

# The conventional "nonroot" uid/gid; numeric, so Kubernetes can verify runAsNonRoot.
USER 65532:65532

ENTRYPOINT ["/opt/venv/bin/gpuclass-extender"]
CMD ["--help"]
