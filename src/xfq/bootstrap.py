"""The one place where settings choose adapters and the parts are wired together."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from xfq.adapters.clock import RunningClock, SimulatedClock, SystemClock
from xfq.adapters.embedded.engine import EmbeddedClaimEngine, EngineLocked
from xfq.adapters.ids import RandomIds
from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.link import LinkBounds
from xfq.api.auth.dev_issuer import DevIssuer
from xfq.api.auth.merchant_signature import InMemoryNonceStore, NonceStore, SignatureVerifier
from xfq.api.auth.personal_data import PersonalDataHasher
from xfq.api.auth.tokens import TokenVerifier, TrustedIssuer
from xfq.api.blocking import HandlerThreads
from xfq.api.token_cache import CachedTokenVerifier
from xfq.config import Settings
from xfq.domain.campaign import Campaign
from xfq.domain.claim_pass import PassKeys, PassRules
from xfq.domain.errors import StorageUnavailable, XfqError
from xfq.ports import Clock
from xfq.services import operations
from xfq.services.waiting_room import WaitingRooms
from xfq.spec import parse_campaign

if TYPE_CHECKING:
    from xfq.adapters.redis.engine import RedisClaimEngine
    from xfq.adapters.redis.persister import Persister

    Engine = EmbeddedClaimEngine | RedisClaimEngine

log = logging.getLogger(__name__)
EMBEDDED_ENGINE_LOCK = 0x7866_7102  # a PostgreSQL ledger's embedded engine: one process
# An unknown merchant key reads the ledger's keys again at most this often, and a signed request
# reads the revoked keys again when the last read is older than this: a revoked key is refused by
# every worker process from KEY_REFRESH_S after the revocation was answered.
KEY_REFRESH_S = 1.0
# Each worker process on Redis asks Redis this often which campaign spec it runs, and loads the
# ledger's when another worker installed an upload: every worker runs an upload from at most
# about CAMPAIGN_CHECK_S (plus the reload) after it was answered.
CAMPAIGN_CHECK_S = 1.0


class NoCampaign(XfqError):
    code = "no_campaign"


@dataclass
class RevokedKeysRead:
    """One read of the revoked merchant keys, which the signed requests arriving while it is
    under way wait for."""

    began: float  # time.monotonic()
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None  # set before `done` if the read failed


@dataclass
class Container:
    """Everything a running xfq needs; built by `build`, torn down by `close`."""

    settings: Settings
    ledger: SqlLedger
    clock: Clock
    ids: RandomIds
    tokens: CachedTokenVerifier
    signatures: SignatureVerifier
    nonces: NonceStore  # shared by the worker processes through Redis when there is one
    merchant_keys: dict[str, tuple[bytes, str]]
    till_key: bytes
    personal_data: PersonalDataHasher
    dev_issuer: DevIssuer | None
    lock_path: Path | None
    passes: PassKeys
    pass_rules: PassRules
    threads: HandlerThreads  # where handlers' ledger calls run, off the event loop
    campaign: Campaign | None = None
    engine: Engine | None = None
    waiting: WaitingRooms | None = None  # None when no round has a waiting room
    spec_digest: str | None = None  # sha256 of the spec `campaign` was parsed from
    _swap: threading.Lock = field(default_factory=threading.Lock)
    _keys_read_at: float = float("-inf")  # time.monotonic() of the last merchant-key refresh
    _revoked_read_at: float = float("-inf")  # ... and of the last read of the revoked keys
    _keys_lock: threading.Lock = field(default_factory=threading.Lock)
    _revoked_read: RevokedKeysRead | None = None  # the read of the revoked keys under way
    _revoked_lock: threading.Lock = field(default_factory=threading.Lock)  # guards it
    _persisting: tuple[threading.Event, threading.Thread] | None = None
    _following: tuple[threading.Event, threading.Thread] | None = None

    def running(self) -> tuple[Campaign, Engine]:
        campaign, engine = self.campaign, self.engine
        if campaign is None or engine is None:
            raise NoCampaign("no campaign is loaded: an operator must import one first")
        return campaign, engine

    def refresh_merchant_keys(self) -> bool:
        """Read the merchant keys again from the ledger (other worker processes approve
        merchants too), at most once per `KEY_REFRESH_S`; False when it is too soon."""
        if time.monotonic() - self._keys_read_at < KEY_REFRESH_S:
            return False
        # One read at a time, so that a read of the live keys that began before a revocation
        # cannot put the key back after the read of the revoked keys took it out.
        with self._keys_lock:
            self._keys_read_at = time.monotonic()
            self.merchant_keys.update(self.ledger.merchant_keys())
        return True

    def forget_revoked_keys(self) -> None:
        """Drop the keys revoked through any worker process, reading them from the ledger when
        the last read began more than `KEY_REFRESH_S` before this call.

        One read at a time, and the calls that arrive while it is under way wait for its
        outcome instead of each reading in turn after it (during a cut, each read waits the
        link's bounds): its failure fails them all at once (503). A read that began more than
        `KEY_REFRESH_S` before a call arrived (a slow link) does not vouch for that call, which
        waits for the next read, begun after it arrived."""
        arrived = time.monotonic()
        while arrived - self._revoked_read_at >= KEY_REFRESH_S:
            with self._revoked_lock:
                if arrived - self._revoked_read_at < KEY_REFRESH_S:
                    return  # another thread read them meanwhile
                read, leading = self._revoked_read, self._revoked_read is None
                if read is None:
                    read = self._revoked_read = RevokedKeysRead(time.monotonic())
            if leading:
                self._read_revoked_keys(read)
                return
            read.done.wait()  # the leading thread's read, within the link's bounds
            if read.error is not None:
                raise StorageUnavailable(
                    f"the read of the revoked merchant keys failed: {read.error}"
                ) from read.error
            if read.began >= arrived - KEY_REFRESH_S:
                return

    def _read_revoked_keys(self, read: RevokedKeysRead) -> None:
        try:
            # Under the keys' lock: a read of the live keys that began before a revocation
            # cannot put the key back after this read took it out (`refresh_merchant_keys`).
            with self._keys_lock:
                for key_id in self.ledger.revoked_merchant_keys():
                    self.merchant_keys.pop(key_id, None)
                # When the read began is what bounds it; set once it succeeded (a ledger that
                # cannot answer makes every signed request a 503 until one does).
                self._revoked_read_at = read.began
        except BaseException as error:
            read.error = error
            raise
        finally:
            with self._revoked_lock:
                self._revoked_read = None
            read.done.set()

    def forget_key(self, key_id: str) -> None:
        """Drop a key revoked through this process (after any reload of the keys under way)."""
        with self._keys_lock:
            self.merchant_keys.pop(key_id, None)

    def load_campaign(self, spec_text: str, source: str, at: datetime) -> Campaign:
        """Install a campaign (validated first) and restart the claim engine on it; when the
        engine cannot start on it, the ledger keeps the campaign it held and claims go on."""
        return self._load(spec_text, source, at, install=True)

    def upload_campaign(self, spec_text: str, source: str, at: datetime) -> Campaign:
        """`load_campaign` for an operator's upload: on Redis, one at a time across the worker
        processes (`upload_lock`; a worker's start loads the same stored spec and takes none)."""
        url = self.settings.redis_url
        if url is None:
            return self.load_campaign(spec_text, source, at)
        from xfq.adapters.redis.connect import is_cluster, storage_errors, sync_client
        from xfq.adapters.redis.upload_lock import one_upload

        campaign_id = parse_campaign(spec_text, source).id
        with storage_errors("the campaign upload could not reach Redis"):
            redis = sync_client(url, is_cluster(url))
        try:
            with one_upload(redis, campaign_id):
                return self.load_campaign(spec_text, source, at)
        finally:
            redis.close()

    def _load(self, spec_text: str, source: str, at: datetime, install: bool) -> Campaign:
        campaign = parse_campaign(spec_text, source)
        for round_id, (opens_at, closes_at) in self.ledger.windows().items():
            campaign = campaign.with_claim_window(round_id, opens_at, closes_at)
        digest = spec_digest(spec_text)
        with self._swap:
            if self.campaign is not None and self.campaign.id != campaign.id:
                raise XfqError(
                    f"this ledger runs campaign '{self.campaign.id}'; "
                    f"start another ledger for '{campaign.id}'"
                )
            if not install and self.campaign is not None and self.spec_digest == digest:
                return self.campaign  # loaded meanwhile
            self.engine = self._restart_engine(campaign, spec_text, at, install)
            self.campaign, self.spec_digest = campaign, digest
            rooms = WaitingRooms(campaign, self.till_key, self.ids)
            self.waiting = rooms if rooms.round_of_type else None
        return campaign

    def follow_upload(self) -> bool:
        """Run the campaign another worker process uploaded; True when it was loaded here.

        Redis names the spec whose counts it runs (the digest an upload's engine start sets
        there); the ledger holds that spec once the upload installed it. A digest the ledger
        does not hold yet (an upload under way, or one whose install failed) changes nothing
        here. The engine and persister restart on the ledger's spec without writing to Redis
        or the ledger: a later upload under way elsewhere is not undone."""
        from xfq.adapters.redis.engine import RedisClaimEngine

        engine = self.engine
        if not isinstance(engine, RedisClaimEngine):
            return False
        running = engine.spec_digest()
        if running is None or running == self.spec_digest:
            return False
        text = self.ledger.campaign_spec()
        if text is None or spec_digest(text) != running:
            return False
        source = "the campaign uploaded through another worker"
        self._load(text, source, self.clock.now(), install=False)
        log.info("campaign %s reloaded from the ledger: uploaded through another worker", running)
        return True

    def follow_uploads(self) -> None:
        """Check for another worker's upload every `CAMPAIGN_CHECK_S`, on a thread of its own
        (off the claim path); Redis engines only."""
        if self.settings.redis_url is None or self._following is not None:
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=self._follow, args=(stop,), daemon=True, name="xfq-campaign-follower"
        )
        thread.start()
        self._following = (stop, thread)

    def _follow(self, stop: threading.Event) -> None:
        failing: str | None = None  # logged once, not every second of an outage
        while not stop.wait(CAMPAIGN_CHECK_S):
            try:
                self.follow_upload()
            except Exception as error:  # Redis or the ledger away, or the spec refused
                if str(error) != failing:
                    log.warning(
                        "the uploaded campaign could not be loaded here yet (retrying each "
                        "second): %s",
                        error,
                        exc_info=not isinstance(error, XfqError),
                    )
                failing = str(error)
            else:
                failing = None

    def _restart_engine(
        self, campaign: Campaign, spec_text: str, at: datetime, install: bool = True
    ) -> Engine:
        """An engine on `campaign`, replacing the running one, and `campaign` installed in the
        ledger once that engine has started: no engine reads the spec from the ledger (they
        rebuild from its vouchers), and no claim reaches the new one before it is returned, so
        none writes a voucher of a type the ledger does not know yet. An upload that fails thus
        leaves the ledger's spec as it was, and a restart runs the campaign that ran before.

        A Redis engine starts before the old one closes, so that a start that fails (Redis away)
        leaves the old one serving; the embedded engine's ledger lock must pass from the old one
        to the new one, so the old one closes first and is started again when the new one or
        the install fails. `install` False: the spec is the ledger's already (`follow_upload`),
        and the new Redis engine starts on what Redis holds, writing nothing there."""
        old, previous = self.engine, self.campaign
        embedded = self.settings.redis_url is None
        if old is not None and embedded:
            old.close()
        try:
            engine, persister = self._start_engine(campaign, spec_digest(spec_text), install)
            try:
                if install:
                    self.ledger.install_campaign(campaign, spec_text, at)
            except BaseException:
                engine.close()
                if old is not None and previous is not None and not embedded:
                    self._restore_redis(old, previous)
                raise
        except BaseException:
            if old is not None and previous is not None and embedded:
                self.engine = self._start_engine(previous)[0]
            raise
        if persister is not None:
            self._run_persister(persister)
        if old is not None and not embedded:
            old.close()
        return engine

    def _restore_redis(self, old: Engine, previous: Campaign) -> None:
        """The new engine's start wrote the upload's claim windows and counts to Redis and the
        ledger did not take it: write back those `old` runs. Taking back a raised count can
        fail (claims took that stock meanwhile); Redis then keeps it, and `xfq reconcile`
        names the type until the upload is sent again (it adds nothing then)."""
        from xfq.adapters.redis.connect import storage_errors
        from xfq.adapters.redis.engine import RedisClaimEngine
        from xfq.adapters.redis.loader import set_counts

        assert isinstance(old, RedisClaimEngine)
        old.replace_campaign(previous)  # Redis holds the new claim windows now
        with contextlib.suppress(XfqError), storage_errors("the counts were not restored"):
            set_counts(old.redis, old.layout, previous, self.spec_digest or "", {})

    def _start_engine(
        self, campaign: Campaign, digest: str = "", load: bool = True
    ) -> tuple[Engine, Persister | None]:
        """An engine on `campaign` (its spec's sha256 `digest`), and the Redis persister to run
        once it replaces the old one (None: the embedded engine, or a deployment whose persister
        runs apart). `load` False: start on what Redis holds, writing nothing to it."""
        s = self.settings
        if s.redis_url is None:
            return EmbeddedClaimEngine(campaign, self.ledger, self.ids, self.lock_path), None
        from xfq.adapters.redis.connect import storage_errors
        from xfq.adapters.redis.engine import EngineTuning, RedisClaimEngine
        from xfq.domain.fair import engine_rules_used

        # The Redis engine decides plain grabs only; these would be silently ignored there.
        unsupported = engine_rules_used(campaign) + [
            # its queue and used admissions live in one process's memory, not shared by workers
            f"waiting room (round {r.id})"
            for r in campaign.rounds
            if r.waiting_room is not None
        ]
        if unsupported:
            raise XfqError(
                "the Redis claim engine does not enforce "
                + ", ".join(unsupported)
                + " yet: run this campaign on the embedded engine (without --redis)"
            )
        tuning = EngineTuning(s.redis_max_batch, s.redis_window_ms / 1000)
        with storage_errors("the Redis claim engine (XFQ_REDIS_URL) could not start"):
            persister = redis_persister(
                s.redis_url, campaign, self.ledger, s.redis_shards, digest=digest, load=load
            )
            engine = RedisClaimEngine(campaign, s.redis_url, self.ids, tuning)
        return engine, persister if s.redis_persister else None

    def _run_persister(self, persister: Persister) -> None:
        from xfq.adapters.redis.persister import Persister

        self._stop_persister()
        stop = threading.Event()
        thread = threading.Thread(
            target=Persister.run, args=(persister, stop), daemon=True, name="xfq-persister"
        )
        thread.start()
        self._persisting = (stop, thread)

    def _stop_persister(self) -> None:
        if self._persisting is not None:
            stop, thread = self._persisting
            stop.set()
            thread.join(10)
            self._persisting = None

    def move_window(self, round_id: str, action: str, operator: str) -> Campaign:
        """Open a round now, or cancel it (no more claims from now); recorded in the ledger."""
        campaign, engine = self.running()
        rnd, now = campaign.round(round_id), self.clock.now()
        if action == "open":
            if now >= rnd.opens_at:
                raise XfqError(f"round {round_id} opened at {rnd.opens_at.isoformat()} already")
            opens_at, closes_at = now, rnd.claim_closes_at
        else:
            if now >= rnd.claim_closes_at:
                raise XfqError(f"round {round_id} is closed for claims already")
            opens_at, closes_at = min(rnd.opens_at, now), now
        moved = campaign.with_claim_window(round_id, opens_at, closes_at)
        with self._swap:
            engine.replace_campaign(moved)
            operations.record_window(
                self.ledger, operator, round_id, opens_at, closes_at, action, now
            ).result()
            self.campaign = moved
            if self.waiting is not None:
                self.waiting.move_opening(round_id, opens_at)
        return moved

    def close(self) -> None:
        if self._following is not None:
            stop, thread = self._following
            stop.set()
            thread.join(30)
        self.threads.close()
        if self.engine is not None:
            self.engine.close()
        self._stop_persister()
        close_nonces = getattr(self.nonces, "close", None)  # a shared store's connections
        if close_nonces is not None:
            close_nonces()
        self.ledger.close()


def shared_secrets(settings: Settings) -> None:
    """Development keys that every worker process of one server must share, put in the
    environment the workers read (production requires them configured: `Settings.checked`)."""
    if settings.environment != "development":
        return
    for name in ("till_code_key", "personal_data_key"):
        if getattr(settings, name) is None:
            os.environ.setdefault(f"XFQ_{name.upper()}", secrets.token_urlsafe(32))
    if settings.dev_issuer and settings.dev_issuer_key is None:
        key = DevIssuer(environment=settings.environment).private_key_pem()
        os.environ.setdefault("XFQ_DEV_ISSUER_KEY", key)


def simulated_clock(settings: Settings) -> Clock | None:
    """The clock XFQ_SIMULATED_START asks for: standing still, or running from the anchor."""
    start, anchor = settings.simulated_start, settings.simulated_anchor
    if start is None:
        return None
    return SimulatedClock(start) if anchor is None else RunningClock(start, anchor)


def build(settings: Settings, clock: Clock | None = None) -> Container:
    settings = settings.checked()
    ledger = SqlLedger(settings.database_url, bounds=serving_bounds(settings))
    lock_path = _lock_path(settings.database_url)
    # Only the embedded engine decides in one process; Redis workers share the ledger.
    embedded = settings.redis_url is None
    if embedded and lock_path is None and not ledger.hold_lock(EMBEDDED_ENGINE_LOCK):
        ledger.close()
        raise EngineLocked(
            "the ledger's claim engine is already running in another process (it holds "
            f"PostgreSQL advisory lock {EMBEDDED_ENGINE_LOCK}); only one process may decide claims"
            " with the embedded engine"
        )
    clock = clock or simulated_clock(settings)
    dev = (
        DevIssuer(environment=settings.environment, private_key_pem=settings.dev_issuer_key)
        if settings.dev_issuer
        else None
    )
    issuers = [
        TrustedIssuer(i.issuer, i.public_key_pem, audience=i.audience) for i in settings.issuers
    ]
    if dev is not None:
        issuers.append(dev.trusted())
    keys = ledger.merchant_keys()
    nonces = nonce_store(settings)
    till_key = settings.key("till_code_key")
    container = Container(
        settings=settings,
        ledger=ledger,
        clock=clock or SystemClock(),
        ids=RandomIds(),
        tokens=CachedTokenVerifier(TokenVerifier(issuers)),
        signatures=SignatureVerifier(keys, nonce_store=nonces),
        nonces=nonces,
        merchant_keys=keys,
        till_key=till_key,
        personal_data=PersonalDataHasher(settings.key("personal_data_key")),
        dev_issuer=dev,
        lock_path=lock_path,
        passes=pass_keys(settings, till_key),
        pass_rules=PassRules(
            timedelta(seconds=settings.claim_pass_lead_s),
            timedelta(seconds=settings.claim_pass_lifetime_s),
            timedelta(seconds=settings.claim_pass_grace_s),
        ),
        threads=HandlerThreads(settings.ledger_threads, settings.ledger_wait_s),
    )
    stored = ledger.campaign_spec()
    if stored is not None:
        container.load_campaign(stored, "the ledger's stored campaign", container.clock.now())
    elif settings.spec_path is not None:
        text = settings.spec_path.read_text(encoding="utf-8")
        container.load_campaign(text, str(settings.spec_path), container.clock.now())
    container.follow_uploads()
    return container


def spec_digest(spec_text: str) -> str:
    return hashlib.sha256(spec_text.encode("utf-8")).hexdigest()


def serving_bounds(settings: Settings) -> LinkBounds:
    """The bounds on a serving process's PostgreSQL link: a request waits on none for longer."""
    return LinkBounds(
        connect_timeout_s=settings.ledger_connect_timeout_s,
        tcp_timeout_s=settings.ledger_tcp_timeout_s,
        answer_timeout_s=settings.ledger_answer_timeout_s,
    )


def nonce_store(settings: Settings) -> NonceStore:
    """Where merchants' used nonces are kept: in Redis when the deployment has it (its worker
    processes share it, so a request replayed to another worker is refused), else in this one
    process's memory (the embedded engine runs in one process only)."""
    if settings.redis_url is None:
        return InMemoryNonceStore()
    from xfq.adapters.redis.nonces import RedisNonceStore

    return RedisNonceStore(settings.redis_url)


def pass_keys(settings: Settings, till_key: bytes) -> PassKeys:
    """The configured claim-pass keys, or one derived from the till-code key (which every
    worker of a server shares already)."""
    configured = [k.get_secret_value().encode() for k in settings.claim_pass_keys]
    derived = hmac.new(till_key, b"xfq claim pass", hashlib.sha256).digest()
    return PassKeys(configured or [derived])


def redis_persister(
    url: str,
    campaign: Campaign,
    ledger: SqlLedger,
    shards: int,
    stale_ms: int | None = None,
    digest: str = "",
    load: bool = True,
) -> Persister:
    """Load `campaign` (its spec's sha256 `digest`, '' if unknown) into the Redis at `url`
    (idempotent; `load` False: it is loaded already) and a persister into `ledger`."""
    import os
    import socket

    from xfq.adapters.redis.connect import is_cluster, sync_client
    from xfq.adapters.redis.layout import Layout, shards_key
    from xfq.adapters.redis.loader import load_campaign
    from xfq.adapters.redis.persister import Persister

    redis = sync_client(url, is_cluster(url))
    if load:
        layout = load_campaign(redis, campaign, ledger, shards, digest)
    else:
        layout = Layout(campaign.id, int(str(redis.get(shards_key(campaign.id)))))
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    if stale_ms is None:
        return Persister(redis, layout, campaign, ledger, consumer)
    return Persister(redis, layout, campaign, ledger, consumer, stale_ms=stale_ms)


def _lock_path(database_url: str) -> Path | None:
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///") + ".engine.lock")
    return None
