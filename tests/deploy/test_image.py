"""The container image: the Dockerfile's promises, and the built image when Docker answers.

The static checks run everywhere. The image tests build the Dockerfile and run the image
(`--help`, then read-only as 65532, then `serve` answering /healthz); they need a Docker
engine and skip with the reason when `docker info` fails (this project's machines have the
docker client but no engine; CI with Docker, e.g. the kind-e2e workflow, runs them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import EXAMPLE_POLICY

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
USER = "65532:65532"
ENTRYPOINT = ["/opt/venv/bin/gpuclass-extender"]
# Run the image as a restricted pod would: read-only root, numeric non-root user, no
# capabilities, no privilege escalation.
LOCKED_DOWN = [
    "--read-only",
    "--user",
    "65532",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]
BUILD_TIMEOUT = 1200


# ---- the Dockerfile, statically ------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    result = []
    for line in logical:
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (the ARGs before the first FROM are dropped)."""
    found: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            found.append([])
        if found:
            found[-1].append((word, rest))
    return found


def python_image() -> str:
    for word, rest in instructions():
        if word == "ARG" and rest.startswith("PYTHON_IMAGE="):
            return rest.removeprefix("PYTHON_IMAGE=")
    raise AssertionError("no ARG PYTHON_IMAGE in the Dockerfile")


def test_builder_and_runtime_share_one_pinned_python_base() -> None:
    image = python_image()
    match = re.fullmatch(r"python:(3\.\d+)\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image)
    assert match, f"base image not pinned by exact tag and digest: {image}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    # The image runs the Python the project is typed and linted for.
    assert match.group(1) == project["tool"]["mypy"]["python_version"]
    assert project["project"]["requires-python"] == f">={match.group(1)}"
    bases = [stage[0][1].split()[0] for stage in stages()]
    # The venv's bin/python links to the base's interpreter: both stages must be the same.
    assert bases == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_runtime_stage_is_non_root_shell_free_and_read_only_safe() -> None:
    runtime = stages()[-1]
    words = [word for word, _ in runtime]
    assert "HEALTHCHECK" not in words
    users = [rest for word, rest in runtime if word == "USER"]
    assert users == [USER]
    entrypoints = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    assert json.loads(entrypoints[0]) == ENTRYPOINT  # exec form: no /bin/sh -c
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env.split()
    # What runs at build time in the runtime stage runs without a shell too.
    for word, rest in runtime:
        if word == "RUN":
            assert rest.startswith("["), f"shell-form RUN in the runtime stage: {rest}"


def test_image_installs_only_pinned_runtime_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    dependencies = project["project"]["dependencies"]
    assert dependencies
    unpinned = [d for d in dependencies if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.]+", d)]
    assert not unpinned, f"unpinned runtime dependencies: {unpinned}"
    builder = " ".join(rest for word, rest in stages()[0] if word == "RUN")
    assert '["project"]["dependencies"]' in builder
    assert "[dev]" not in builder
    assert "optional-dependencies" not in builder


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go filepath.Match, plus `**`)."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def in_build_context(path: str) -> bool:
    """Whether .dockerignore lets `path` (relative, POSIX) into the build context: the
    last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        regex = _pattern(line.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = negated
    return included


def test_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    sources = [
        rest.split()[0]
        for stage in stages()
        for word, rest in stage
        if word == "COPY" and not rest.startswith("--from")
    ]
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        files = [source] if (REPO / source).is_file() else []
        files += [
            p.relative_to(REPO).as_posix()
            for p in (REPO / source).rglob("*.py")
            if "__pycache__" not in p.parts
        ]
        assert files, f"COPY {source}: nothing there"
        for file in files:
            assert in_build_context(file), f"COPY {source}: {file} is excluded by .dockerignore"
    for outside in (".git/HEAD", ".venv/pyvenv.cfg", "tests/builders.py", "manifests/x.yaml"):
        assert not in_build_context(outside), f"{outside} would be sent to the builder"
    assert not in_build_context("extender/__pycache__/errors.cpython-311.pyc")


# ---- the built image (needs a Docker engine) -----------------------------------------------


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def engine_missing() -> str | None:
    """Why no Docker engine can be used here, or None when `docker info` answers."""
    if shutil.which("docker") is None:
        return "no Docker engine: docker info failed: no `docker` command on PATH"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30)
    except subprocess.TimeoutExpired:
        return "no Docker engine: docker info failed: no answer in 30 s"
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines() or [f"exit {info.returncode}"]
        return f"no Docker engine: docker info failed: {lines[-1].strip()}"
    return None


def tail(result: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    reason = engine_missing()
    if reason:
        pytest.skip(reason)
    tag = f"gpuclass-extender:test-{uuid.uuid4().hex[:8]}"
    build = docker("build", "--tag", tag, str(REPO), timeout=BUILD_TIMEOUT)
    if build.returncode != 0:
        pytest.fail(f"docker build failed:\n{tail(build)}")
    try:
        yield tag
    finally:
        docker("image", "rm", "--force", tag)


def test_image_config(image: str) -> None:
    inspect = docker("image", "inspect", image)
    assert inspect.returncode == 0, tail(inspect)
    config: dict[str, Any] = json.loads(inspect.stdout)[0]["Config"]
    assert config["User"] == USER
    assert config["Entrypoint"] == ENTRYPOINT
    assert not config.get("Healthcheck")


def test_help_runs(image: str) -> None:
    result = docker("run", "--rm", "--network", "none", image, "--help")
    assert result.returncode == 0, tail(result)
    assert "serve" in result.stdout
    assert "validate-policy" in result.stdout


def test_runs_read_only_as_65532(image: str) -> None:
    result = docker("run", "--rm", "--network", "none", *LOCKED_DOWN, image, "--help")
    assert result.returncode == 0, tail(result)
    policy = f"{EXAMPLE_POLICY}:/etc/gpuclass/policy.yaml:ro"
    checks = docker(
        "run",
        "--rm",
        "--network",
        "none",
        *LOCKED_DOWN,
        "--volume",
        policy,
        image,
        "validate-policy",
        "/etc/gpuclass/policy.yaml",
    )
    assert checks.returncode == 0, tail(checks)
    assert ": ok (digest" in checks.stdout


def unreachable_kubeconfig() -> str:
    """A kubeconfig whose API server never answers: serve starts, the cache never syncs."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
    )


def test_serve_answers_on_a_read_only_root(image: str, tmp_path: Path) -> None:
    """`serve` starts and answers /healthz with nothing writable; /readyz stays 503, as no
    API server answers at the kubeconfig's address."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(unreachable_kubeconfig())
    kubeconfig.chmod(0o644)
    name = f"gpuclass-extender-test-{uuid.uuid4().hex[:8]}"
    started = docker(
        "run",
        "--detach",
        "--name",
        name,
        *LOCKED_DOWN,
        "--publish",
        "127.0.0.1::8888",
        "--volume",
        f"{EXAMPLE_POLICY}:/etc/gpuclass/policy.yaml:ro",
        "--volume",
        f"{kubeconfig}:/etc/gpuclass/kubeconfig:ro",
        image,
        "serve",
        "--policy",
        "/etc/gpuclass/policy.yaml",
        "--kubeconfig",
        "/etc/gpuclass/kubeconfig",
        "--host",
        "0.0.0.0",
        "--port",
        "8888",
    )
    assert started.returncode == 0, tail(started)
    try:
        port = docker("port", name, "8888/tcp").stdout.splitlines()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                    status = response.status
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        logs = tail(docker("logs", name))
        assert status == 200, f"/healthz never answered 200:\n{logs}"
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(base + "/readyz", timeout=5)
        assert not_ready.value.code == 503
        running = docker("inspect", "--format", "{{.State.Running}}", name)
        assert running.stdout.strip() == "true", logs
    finally:
        docker("rm", "--force", name)


def test_the_image_serves_tls_and_refuses_clients_without_a_certificate(
    image: str, tmp_path: Path
) -> None:
    """Item 4's check against the image as the Service variant runs it: read-only root,
    user 65532, TLS with client-certificate verification."""
    import ssl

    from tests.certificates import CertificateAuthority

    ca = CertificateAuthority(tmp_path, "gpuclass-ca")
    server = ca.issue("gpuclass-extender", server=True)
    scheduler = ca.issue("kube-scheduler", server=False)
    (tmp_path / "kubeconfig").write_text(unreachable_kubeconfig())
    for path in tmp_path.iterdir():
        path.chmod(0o644)  # test-only keys, readable by the image's user
    name = f"gpuclass-extender-tls-{uuid.uuid4().hex[:8]}"
    started = docker(
        "run", "--detach", "--name", name, *LOCKED_DOWN, "--publish", "127.0.0.1::8443",
        "--volume", f"{EXAMPLE_POLICY}:/etc/gpuclass/policy.yaml:ro",
        "--volume", f"{tmp_path}:/tls:ro",
        image, "serve", "--policy", "/etc/gpuclass/policy.yaml", "--host", "0.0.0.0",
        "--port", "8443", "--tls-cert", f"/tls/{server.cert.name}",
        "--tls-key", f"/tls/{server.key.name}", "--client-ca", f"/tls/{ca.path.name}",
        "--kubeconfig", "/tls/kubeconfig",
    )  # fmt: skip
    assert started.returncode == 0, tail(started)
    try:
        port = docker("port", name, "8443/tcp").stdout.splitlines()[0].rsplit(":", 1)[1]
        url = f"https://127.0.0.1:{port}/healthz"

        def get(client: Any) -> int:
            context = ssl.create_default_context(cafile=str(ca.path))
            if client is not None:
                context.load_cert_chain(client.cert, client.key)
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                return int(response.status)

        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = get(scheduler)
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        assert status == 200, tail(docker("logs", name))
        with pytest.raises((OSError, urllib.error.URLError)):
            get(None)
    finally:
        docker("rm", "--force", name)
