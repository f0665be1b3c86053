"""Running the Redis claim engine in tests: a ledger (SQLite unless told), a Redis, a persister
drained on demand. Shared by the contract suite and the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servers.redis_servers import RedisCluster, RedisServer
from xfq.adapters.ids import RandomIds
from xfq.adapters.redis.connect import is_cluster, sync_client
from xfq.adapters.redis.engine import EngineTuning, RedisClaimEngine
from xfq.adapters.redis.loader import load_campaign
from xfq.adapters.redis.persister import Persister
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.link import LinkBounds
from xfq.domain.campaign import Campaign
from xfq.domain.voucher import Voucher


class RedisRig:
    """The Redis engine over a real Redis (one node or a Cluster) and a ledger: a SQLite file in
    `directory`, or `ledger_url` opened with `bounds`."""

    def __init__(
        self,
        directory: Path,
        campaign: Campaign,
        spec_text: str,
        servers: RedisServer | RedisCluster,
        shards: int,
        ledger_url: str | None = None,
        bounds: LinkBounds | None = None,
    ) -> None:
        self.servers = servers
        self.url = servers.url
        self._url = ledger_url or f"sqlite:///{directory / 'ledger.db'}"
        self._bounds = bounds
        self._campaign = campaign
        self._spec_text = spec_text
        self.shards = shards
        self.ledger: SqlLedger | None = None
        self.engine: RedisClaimEngine | None = None
        self.persister: Persister | None = None
        self._refusing = False

    def start(self, tuning: EngineTuning | None = None) -> RedisClaimEngine:
        assert self.engine is None, "stop the engine before starting it again"
        self.ledger = SqlLedger(self._url, bounds=self._bounds)
        first = self._campaign.rounds[0].opens_at
        self.ledger.install_campaign(self._campaign, self._spec_text, first)
        redis = sync_client(self.url, is_cluster(self.url))
        layout = load_campaign(redis, self._campaign, self.ledger, self.shards)
        self.persister = Persister(redis, layout, self._campaign, self.ledger)
        self.engine = RedisClaimEngine(self._campaign, self.url, RandomIds(), tuning)
        return self.engine

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def stored_vouchers(self, person_id: str) -> list[Voucher]:
        assert self.ledger is not None and self.persister is not None
        if not self._refusing:
            self.persister.drain()
        return self.ledger.reader().vouchers_of(person_id)

    def _nodes(self) -> list[RedisServer]:
        return self.servers.nodes if isinstance(self.servers, RedisCluster) else [self.servers]

    @contextmanager
    def stall_commits(self) -> Iterator[None]:
        # Redis holds every write command (a script that may write included) while paused.
        for node in self._nodes():
            node.cli("CLIENT", "PAUSE", "20000", "WRITE")
        try:
            yield
        finally:
            for node in self._nodes():
                node.cli("CLIENT", "UNPAUSE")

    @contextmanager
    def failing_commits(self) -> Iterator[None]:
        # With too few replicas Redis refuses every write, as it does when its disk fails.
        self._refusing = True
        for node in self._nodes():
            node.cli("CONFIG", "SET", "min-replicas-to-write", "1")
        try:
            yield
        finally:
            for node in self._nodes():
                node.cli("CONFIG", "SET", "min-replicas-to-write", "0")
            self._refusing = False
