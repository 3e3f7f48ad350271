"""Child processes of the suite: servers that announce their port, the load generator,
and readings from /proc (RSS, CPU time)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import localcluster

from bench import OUT, child_env

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Child:
    """A `python -m bench.<module>` process that prints one JSON line when it serves."""

    def __init__(self, module: str, *args: str, timeout: float = 300, log: Path | None = None):
        OUT.mkdir(parents=True, exist_ok=True)
        self.log_path = log or OUT / f"{module.rsplit('.', 1)[-1]}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=child_env(),
        )
        assert self.proc.stdout is not None
        self.info: dict[str, Any] = json.loads(_readline(self.proc.stdout, timeout, self))
        self.port = int(self.info["port"])
        self.pid = self.proc.pid

    def stop(self, timeout: float = 60) -> None:
        localcluster.terminate(self.proc, timeout)
        self._log.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _readline(stream: IO[bytes], timeout: float, child: Child) -> str:
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            child.proc.kill()
            raise RuntimeError(f"no ready line in {timeout} s; see {child.log_path}")
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"child exited ({child.proc.wait()}); see {child.log_path}")
            buf += chunk
    return buf.split(b"\n", 1)[0].decode()


class LoadGen:
    """The load generator process; `run()` sends one command and waits for its result."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_env(),
            text=True,
        )

    def run(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited ({self.proc.wait()})")
        result: dict[str, Any] = json.loads(line)
        if "error" in result:
            raise RuntimeError(f"load generator: {result['error']}")
        return result

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) of a process, MiB."""
    return localcluster.proc_status_kib(pid, "VmRSS") / 1024


def hwm_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, MiB."""
    return localcluster.proc_status_kib(pid, "VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK
