"""A throwaway PostgreSQL cluster on a free loopback port, in a temp dir, for tests and benchmarks.

`initdb` makes the cluster (trust authentication, user `xfq`), then the `postgres` server runs
as a child process of this one, so it is stopped by its PID. PostgreSQL refuses to run as root:
when this process is root, the cluster's directory is given to the `postgres` system user
(created by Debian's postgresql package) and the child processes switch to it before they run
(`subprocess.Popen(user=..., group=...)`, no sudo or su needed).

Durability as in production: `fsync=on`, `synchronous_commit=on`.

From a shell (e.g. for the benchmarks):
    .venv/bin/python tests/servers/postgres_server.py   # prints the URL, stops on Ctrl-C
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
USER = "xfq"
SYSTEM_USER = "postgres"  # who runs the server when this process is root


def postgres_bindir() -> Path:
    """Where initdb and postgres are: `pg_config --bindir`, else Debian's versioned folder."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    raise RuntimeError(
        "PostgreSQL's initdb was not found (pg_config --bindir, /usr/lib/postgresql/*/bin): "
        "run scripts/ensure-system-packages, which installs Debian's postgresql"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One cluster; `start`, `stop` (by PID) and start again on the same data and port."""

    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        self.bindir = postgres_bindir()
        self.directory = directory or Path(tempfile.mkdtemp(prefix="xfq-postgres-"))
        self._owns_directory = directory is None
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.port = port or free_port()
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:  # initdb and postgres refuse root
            account = pwd.getpwnam(SYSTEM_USER)
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        command = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER]
        command += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"]
        done = subprocess.run(command, capture_output=True, text=True, check=False, **self._as)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        if not self.data.exists():
            self.init()
        assert self.process is None, "already running"
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": "200",
        }
        command = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **self._as
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at start: {self.log.read_text()[-2000:]}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, kill: bool = False) -> None:
        """Fast shutdown (SIGINT) of this server's PID; with `kill`, SIGKILL to its process
        group (the postmaster and its backends: a crash, as far as PostgreSQL can tell)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if kill:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:  # backends leave the group (and shared memory) last
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def close(self) -> None:
        self.stop()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def execute(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.encode())

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the cluster on `kill PID` too
    with PostgresServer() as server:
        print(server.url(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
