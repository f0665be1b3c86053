"""Throwaway Redis servers for tests: real `redis-server` processes on free loopback ports.

Each server runs in a directory of its own with `appendonly yes` and `appendfsync always`, as
production does, so a test can `kill -9` one and restart it on the same files. Servers are
stopped by the PID we started, never by name.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 10.0
REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
MISSING = "redis-server or redis-cli is not installed (scripts/ensure-system-packages installs it)"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port that is free, and whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        if _port_free(port) and _port_free(port + 10000):
            return port
    raise RuntimeError("no free loopback port found")


@dataclass
class RedisServer:
    """One `redis-server` we started; `kill` is kill -9, `start` brings it back on its files."""

    directory: Path
    port: int
    cluster: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None, MISSING
        assert self.process is None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            REDIS_SERVER,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
            if self.cli("PING", check=False) == "PONG":
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer in time")

    def cli(self, *args: str, check: bool = True) -> str:
        assert REDIS_CLI is not None, MISSING
        done = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=check,
        )
        return done.stdout.strip()

    def kill(self) -> None:
        """kill -9: no shutdown, no final fsync beyond what `appendfsync always` did."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(START_TIMEOUT_S)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(START_TIMEOUT_S)
            self.process = None

    def flush(self) -> None:
        self.cli("FLUSHALL")


def start_server(directory: Path) -> RedisServer:
    server = RedisServer(directory, free_port())
    server.start()
    return server


@dataclass
class RedisCluster:
    """A real Redis Cluster of masters only, made with `redis-cli --cluster create`."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def flush(self) -> None:
        for node in self.nodes:
            node.cli("FLUSHALL")


def start_cluster(directory: Path, masters: int = 3) -> RedisCluster:
    nodes = []
    try:
        for n in range(masters):
            node = RedisServer(directory / f"node{n}", free_port(), cluster=True)
            node.start()
            nodes.append(node)
        assert REDIS_CLI is not None, MISSING
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-yes"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        _wait_cluster_ok(nodes)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisCluster(nodes)


def _wait_cluster_ok(nodes: list[RedisServer]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all("cluster_state:ok" in node.cli("CLUSTER", "INFO") for node in nodes):
            return
        time.sleep(0.1)
    raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
