"""A real xfq deployment on loopback for fault runs, with every process ours to kill.

Redis (appendonly, appendfsync always) and a PostgreSQL cluster run in a temp dir; a
`FaultProxy` sits in front of each; `xfq serve --workers 2 --server granian` talks to the
stores through the proxies, and `xfq persist` (a process of its own, so that it can be killed
alone) moves Redis's claim streams into PostgreSQL. `supervise` plays systemd's
`Restart=always`: an API server or persister that exited is started again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

from faults.proxy import FaultProxy
from servers.postgres_server import PostgresServer
from servers.postgres_server import free_port as free_tcp_port
from servers.redis_servers import RedisServer, free_port
from xfq.simulation.over_http import DemoIdentityProvider

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 5.0
DATABASE = "xfq_faults"
# A killed persister's unacknowledged entries are taken over after this (production: 30 s).
PERSISTER_STALE_MS = 3000


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def local_ports(pid: int) -> set[int]:
    """The local ports of a process's IPv4 TCP sockets (its connections to a proxy among them)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()  # sl local_address rem_address st ... uid timeout inode
        if fields[9] in inodes:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """Ctrl-C, then kill -9 of its process group (it leads one) if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Deployment:
    def __init__(
        self, directory: Path, spec: Path, idp: DemoIdentityProvider, now: datetime
    ) -> None:
        self.directory = directory
        self.spec = spec
        self.idp = idp
        self.now = now
        self.redis = RedisServer(directory / "redis", free_port())
        self.postgres = PostgresServer()  # its own temp dir: the postgres user must reach it
        self.redis_proxy: FaultProxy | None = None
        self.postgres_proxy: FaultProxy | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.persister: subprocess.Popen[bytes] | None = None
        self.port = free_tcp_port()
        self.restarts = {"api": 0, "persister": 0}
        self._keys = {k: secrets.token_urlsafe(32) for k in ("TILL_CODE_KEY", "PERSONAL_DATA_KEY")}

    # --- addresses ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_url(self) -> str:
        """Redis itself, for checks (the API goes through `proxied_redis_url`)."""
        return self.redis.url

    @property
    def postgres_url(self) -> str:
        return self.postgres.url(DATABASE)

    def _proxied_redis_url(self) -> str:
        assert self.redis_proxy is not None
        return f"redis://127.0.0.1:{self.redis_proxy.port}/0"

    def _proxied_postgres_url(self) -> str:
        assert self.postgres_proxy is not None
        return f"postgresql://xfq@127.0.0.1:{self.postgres_proxy.port}/{DATABASE}"

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.redis.start()
        self.postgres.start()
        self.postgres.execute(f"CREATE DATABASE {DATABASE}")
        self.redis_proxy = FaultProxy(self.redis.port)
        self.postgres_proxy = FaultProxy(self.postgres.port)
        self.redis_proxy.start()
        self.postgres_proxy.start()
        self.start_api()
        self.wait_healthy()  # the API server loads the campaign the persister reads
        self.start_persister()

    def close(self) -> None:
        _stop(self.api)
        _stop(self.persister)
        for proxy in (self.redis_proxy, self.postgres_proxy):
            if proxy is not None:
                proxy.close()
        self.redis.stop()
        self.postgres.close()

    def _env(self) -> dict[str, str]:
        trusted = self.idp.trusted()
        issuer = {"issuer": trusted.issuer, "public_key_pem": trusted.public_key_pem}
        return {
            **os.environ,
            "XFQ_ISSUERS": json.dumps([issuer]),
            "XFQ_SIMULATED_START": self.now.isoformat(),
            "XFQ_REDIS_PERSISTER": "false",  # the persister runs as its own process here
            "XFQ_CLAIM_RATE_PER_PERSON_PER_S": "1000",
            "XFQ_CLAIM_BURST_PER_PERSON": "1000",
            "XFQ_CLAIM_RATE_PER_ADDRESS_PER_S": "1000000",
            "XFQ_CLAIM_BURST_PER_ADDRESS": "1000000",
            **{f"XFQ_{name}": value for name, value in self._keys.items()},
        }

    def _log(self, name: str) -> int:
        return os.open(self.directory / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def start_api(self) -> None:
        command = [sys.executable, "-m", "xfq", "serve", "--spec", str(self.spec),
                   "--postgres", self._proxied_postgres_url(), "--redis",
                   self._proxied_redis_url(), "--workers", "2", "--server", "granian",
                   "--port", str(self.port)]  # fmt: skip
        log = self._log("api")
        self.api = subprocess.Popen(
            command, env=self._env(), stdout=log, stderr=log, start_new_session=True
        )
        os.close(log)

    def start_persister(self) -> None:
        command = [sys.executable, "-m", "xfq", "persist", "--redis", self._proxied_redis_url(),
                   "--postgres", self._proxied_postgres_url(),
                   "--stale-ms", str(PERSISTER_STALE_MS)]  # fmt: skip
        log = self._log("persister")
        self.persister = subprocess.Popen(
            command, env=self._env(), stdout=log, stderr=log, start_new_session=True
        )
        os.close(log)

    def worker_pids(self) -> list[int]:
        return _children(self.api.pid) if self.api is not None else []

    def postgres_pids(self) -> list[int]:
        process = self.postgres.process
        return [] if process is None else [process.pid, *_children(process.pid)]

    def supervise(self) -> list[str]:
        """Start again the API server or persister that exited; what was restarted."""
        started = []
        if self.api is not None and self.api.poll() is not None:
            self.start_api()
            self.restarts["api"] += 1
            started.append("api")
        if self.persister is not None and self.persister.poll() is not None:
            self.start_persister()
            self.restarts["persister"] += 1
            started.append("persister")
        return started

    def kill_api(self) -> bool:
        """kill -9 the API server and its workers (its whole process group); False if it was
        not running."""
        if self.api is None or self.api.poll() is not None:
            return False
        os.killpg(self.api.pid, signal.SIGKILL)
        self.api.wait(STOP_TIMEOUT_S)
        return True

    def kill_persister(self) -> bool:
        if self.persister is None or self.persister.poll() is not None:
            return False
        self.persister.kill()
        self.persister.wait(STOP_TIMEOUT_S)
        return True

    # --- waiting --------------------------------------------------------------------------

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until /health answers 200 on several tries in a row (both workers up)."""
        deadline = time.monotonic() + timeout_s
        streak = 0
        while streak < 4:
            if time.monotonic() > deadline:
                raise AssertionError(f"no healthy API in {timeout_s:.0f} s; see {self.directory}")
            self.supervise()
            try:
                ok = httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                ok = False
            streak = streak + 1 if ok else 0
            time.sleep(0.1 if ok else 0.3)

    def ledger_vouchers(self) -> int:
        with psycopg.connect(self.postgres_url, connect_timeout=5) as connection:
            row = connection.execute("SELECT count(*) FROM vouchers").fetchone()
        assert row is not None
        return int(row[0])
