"""The Redis claim engine: many processes decide claims against one Redis (or Cluster).

A claim goes to its person's home shard (see `layout`). Claims arriving in one event-loop pass
are gathered per shard and sent as one script call (`scripts.CLAIM_BATCH`), which Redis runs
atomically and, with `appendfsync always`, writes to disk before it answers: an `issued` answer
is durable when the caller hears it. The persister later moves the shard streams into the
ledger. Once every shard is out of a type, each process answers it from memory; so too a claim
of a round that Redis said, in the last second, has not opened yet (see `openings`).

Callers on an event loop (the HTTP front) are served on their own loop with their own client;
callers on plain threads (the port's tests, scripts) are served on a loop the engine runs.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import orjson
from redis.asyncio.cluster import RedisCluster as AsyncCluster

from xfq.adapters.redis import connect, rollovers
from xfq.adapters.redis.connect import AsyncRedis
from xfq.adapters.redis.issued_log import IssuedLog, claim_key, unpacked
from xfq.adapters.redis.layout import Layout, shards_key
from xfq.adapters.redis.openings import Openings
from xfq.adapters.redis.scripts import BORROW_SCRIPT, CLAIM_SCRIPT, LEND_SCRIPT
from xfq.adapters.sql.times import from_us, to_us
from xfq.domain.campaign import Campaign, Round, VoucherType
from xfq.domain.claim import ClaimCode, PersonCounts, decide_claim
from xfq.domain.errors import StorageUnavailable, UnknownObject, XfqError
from xfq.domain.rollover import RolloverMove, rolled_in_counts
from xfq.domain.voucher import Voucher, VoucherState, new_voucher
from xfq.ports import ClaimAnswer, ClaimRequest, IdSource, Reply

FALL_THROUGH_ATTEMPTS = 3  # home shard, then stock borrowed from others, twice at most
Flags = dict[str, str]


@dataclass
class _Claim:
    request: ClaimRequest
    now: datetime
    rnd: Round
    vtype: VoucherType
    voucher: Voucher  # what an `issued` answer will carry
    shard: int
    attempts: int = 0


@dataclass
class _Flight:
    """A key being decided: repeats of it wait for the same answer."""

    type_id: str
    replies: list[Reply] = field(default_factory=list)


@dataclass(frozen=True)
class EngineTuning:
    """How claims are gathered: at most `max_batch` per script call; `window_s` 0 sends what
    one event-loop pass gathered, more waits that long for others to join."""

    max_batch: int = 256
    window_s: float = 0.0


class RedisClaimEngine:
    """Implements `xfq.ports.ClaimEngine` over Redis; `claim` is the awaitable form."""

    def __init__(
        self,
        campaign: Campaign,
        url: str,
        ids: IdSource,
        tuning: EngineTuning | None = None,
    ) -> None:
        self._campaign = campaign
        self._url = url
        self._ids = ids
        self._tuning = tuning or EngineTuning()
        self.cluster = connect.is_cluster(url)
        self.redis = connect.sync_client(url, self.cluster)
        shards = self.redis.get(shards_key(campaign.id))
        if shards is None:
            raise StorageUnavailable(f"campaign '{campaign.id}' is not loaded into Redis")
        self.layout = Layout(campaign.id, int(str(shards)))
        self._lock = threading.Lock()
        self._flights: dict[tuple[str, str], _Flight] = {}
        self._sold_out: dict[str, dict[str, str]] = {}  # type -> what `IssuedLog` gives
        self._issued_log = IssuedLog(self.redis, self.layout)
        self._openings = Openings(self.redis, self.layout, [r.id for r in campaign.rounds])
        self._not_open_answers: dict[tuple[str, datetime], ClaimAnswer] = {}
        self._finding: set[str] = set()  # types whose issued keys are being read
        self._rolled_seen: set[str] = set()  # rollover moves known to be in Redis
        self._batchers: dict[asyncio.AbstractEventLoop, _Batcher] = {}
        self._own: _LoopThread | None = None
        self._closed = False

    # --- the port ------------------------------------------------------------------------

    def submit(self, request: ClaimRequest, now: datetime, reply: Reply) -> None:
        if self._closed:
            reply(StorageUnavailable("this claim engine is closed"))
            return
        try:
            rnd, vtype = self._campaign.voucher_type(request.type_id)
        except UnknownObject as error:
            reply(ClaimAnswer(ClaimCode.UNKNOWN_TYPE, str(error)))
            return
        remembered = self._remembered(request, rnd, vtype, now)
        if remembered is not None:
            reply(remembered)
            return
        if not self._join_flight(request, reply):
            return
        person = request.citizen.person_id
        voucher = self._new_voucher(rnd, vtype, person, now)
        item = _Claim(request, now, rnd, vtype, voucher, self.layout.home(person))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            own = self._own_loop()
            own.loop.call_soon_threadsafe(self._add_here, item)
        else:
            self._batcher(loop).add(item)

    async def claim(self, request: ClaimRequest, now: datetime) -> ClaimAnswer:
        """Decide on the running loop; the answer is durable when returned."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[ClaimAnswer | BaseException] = loop.create_future()
        loop_thread = threading.get_ident()

        def reply(answer: ClaimAnswer | BaseException) -> None:
            if threading.get_ident() == loop_thread:
                answered.set_result(answer)
            else:
                loop.call_soon_threadsafe(answered.set_result, answer)

        self.submit(request, now, reply)
        answer = await answered
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def claim_sync(
        self, request: ClaimRequest, now: datetime, timeout_s: float = 30
    ) -> ClaimAnswer:
        """Decide from a thread that is not on an event loop; waits for the answer."""
        answered: Future[ClaimAnswer] = Future()

        def reply(answer: ClaimAnswer | BaseException) -> None:
            if isinstance(answer, BaseException):
                answered.set_exception(answer)
            else:
                answered.set_result(answer)

        self.submit(request, now, reply)
        return answered.result(timeout_s)

    def wait_sold_out(self, type_id: str, timeout_s: float) -> bool:
        """True once this process answers `type_id` from memory (every shard is out of it)."""
        deadline = time.monotonic() + timeout_s
        while type_id not in self._sold_out and time.monotonic() < deadline:
            time.sleep(0.01)
        return type_id in self._sold_out

    def remaining(self, type_id: str) -> int:
        return self.stock()[type_id]

    def sold_out(self, type_id: str) -> bool:
        return type_id in self._sold_out

    def answers_from_memory(self, type_id: str, now: datetime) -> bool:
        if type_id in self._sold_out:
            return True
        try:
            rnd, _ = self._campaign.voucher_type(type_id)
        except UnknownObject:
            return False
        return self._openings.ahead(rnd.id, now) is not None

    def answer_from_memory(self, request: ClaimRequest, now: datetime) -> ClaimAnswer | None:
        if self._closed:
            return None
        try:
            rnd, vtype = self._campaign.voucher_type(request.type_id)
        except UnknownObject:
            return None
        return self._remembered(request, rnd, vtype, now)

    def _remembered(
        self, request: ClaimRequest, rnd: Round, vtype: VoucherType, now: datetime
    ) -> ClaimAnswer | None:
        known = self._sold_out.get(vtype.id)
        if known is not None:
            return self._from_memory(request, rnd, vtype, now, known)
        opens = self._openings.ahead(rnd.id, now)
        if opens is not None:
            return self._not_open(rnd, vtype, request, now, opens)
        return None

    def stock(self) -> dict[str, int]:
        """Remaining count of every voucher type, summed over the shards."""
        types = [t.id for r in self._campaign.rounds for t in r.types]
        # One MGET per shard (its keys share a hash tag), not a pipeline of GETs: a Cluster
        # pipeline sends each command that failed once more on its own, so a paused master held
        # the read for a socket timeout per type.
        with connect.storage_errors("the stock could not be read"):
            per_shard = [
                self.redis.mget([self.layout.stock(shard, type_id) for type_id in types])
                for shard in range(self.layout.shards)
            ]
        return {t: sum(int(values[n] or 0) for values in per_shard) for n, t in enumerate(types)}

    def top_up(self, moves: Iterable[RolloverMove]) -> int:
        """Give Redis the stock of rollover moves recorded in the ledger, each move once however
        often this is called, from any process (see `rollovers`); the vouchers added now."""
        wanted = [m for m in moves if m.adds_stock]
        with connect.storage_errors("the rolled-over stock was not added"):
            added = rollovers.top_up(self.redis, self.layout, wanted)
        # Each move is in Redis now, added by this process or another: a type this process
        # learnt as sold out before the stock came (Redis was away until after the round
        # opened) is asked of Redis again; once per move, so sold-out answers stay cheap.
        with self._lock:
            for m in wanted:
                if m.key not in self._rolled_seen and m.into_type_id is not None:
                    self._rolled_seen.add(m.key)
                    self._sold_out.pop(m.into_type_id, None)
        return sum(m.added_count for m in added)

    def unpersisted(
        self, in_ledger: Mapping[str, int], moves: Sequence[RolloverMove]
    ) -> dict[str, int]:
        """Of each type in `in_ledger` (its vouchers in the ledger), how many more Redis issued:
        claims the persister has not moved yet. Redis issued what its stock lost: the count and
        the rollover stock it received (`moves` the ledger recorded) less what is left. A move
        between shards not yet received counts as issued until the persister completes it, so
        this is never less than the truth."""
        with connect.storage_errors("the claims Redis issued could not be counted"):
            late = {m.key for m in rollovers.missing(self.redis, self.layout, moves)}
            left = self.stock()
        received = rolled_in_counts(m for m in moves if m.key not in late)
        counts = {t.id: t.count for r in self._campaign.rounds for t in r.types}
        return {
            type_id: counts[type_id] + received.get(type_id, 0) - left[type_id] - held
            for type_id, held in in_ledger.items()
        }

    def replace_campaign(self, campaign: Campaign) -> None:
        """Decide from now on by `campaign`: the same voucher types, other claim windows,
        written to Redis so that every process decides by them."""
        from xfq.adapters.redis.loader import write_rounds

        same = {t.id: t.count for r in campaign.rounds for t in r.types}
        known = {t.id: t.count for r in self._campaign.rounds for t in r.types}
        if same != known:
            raise XfqError("a running engine can change claim windows, not voucher types")
        try:
            with connect.storage_errors("the claim windows were not changed"):
                write_rounds(self.redis, self.layout, campaign)
        finally:  # some shards may hold the new windows even when the call failed
            self._openings.moved()
        self._campaign = campaign

    def spec_digest(self) -> str | None:
        """The sha256 of the campaign spec whose voucher counts Redis runs (set by the last
        load that changed them, from any process); None before any load set one."""
        with connect.storage_errors("the campaign's spec digest could not be read"):
            digest = self.redis.get(self.layout.spec_digest())
        return None if digest is None else str(digest)

    def close(self) -> None:
        self._closed = True
        own, self._own = self._own, None
        if own is not None:
            own.stop()
        # the synchronous client stays: stock may still be read, as of an embedded engine

    # --- deciding ------------------------------------------------------------------------

    def _join_flight(self, request: ClaimRequest, reply: Reply) -> bool:
        """True if this is the key's first claim in flight here; else it waits or conflicts."""
        key = (request.citizen.person_id, request.idempotency_key)
        with self._lock:
            flight = self._flights.get(key)
            if flight is None:
                self._flights[key] = _Flight(request.type_id, [reply])
                return True
            if flight.type_id == request.type_id:
                flight.replies.append(reply)
                return False
        reply(_conflict(flight.type_id))
        return False

    def _finish(self, item: _Claim, answer: ClaimAnswer | BaseException) -> None:
        key = (item.request.citizen.person_id, item.request.idempotency_key)
        with self._lock:
            flight = self._flights.pop(key)
        for reply in flight.replies:
            reply(answer)

    def _new_voucher(self, rnd: Round, vtype: VoucherType, person: str, now: datetime) -> Voucher:
        window = rnd.validity.window(rnd.opens_at, now, self._campaign.tz)
        return new_voucher(
            self._ids.new_id("v"), vtype.id, rnd.id, vtype.category, person, now, window
        )

    def _not_open(
        self, rnd: Round, vtype: VoucherType, request: ClaimRequest, now: datetime, opens: datetime
    ) -> ClaimAnswer:
        """The answer Redis would give: it names only the opening, so one serves everyone."""
        answer = self._not_open_answers.get((rnd.id, opens))
        if answer is None:
            answer = refusal(rnd, vtype, request, now, "N", str(to_us(opens)))
            self._not_open_answers[(rnd.id, opens)] = answer
        return answer

    def _from_memory(
        self,
        request: ClaimRequest,
        rnd: Round,
        vtype: VoucherType,
        now: datetime,
        issued: dict[str, str],
    ) -> ClaimAnswer:
        """A sold-out type: a repeat gets its voucher, anyone else the domain's refusal."""
        person = request.citizen.person_id
        found = issued.get(claim_key(person, request.idempotency_key))
        if found is not None:
            voucher_id, at, valid_from, valid_until = unpacked(found)
            voucher = Voucher(
                id=voucher_id,
                type_id=vtype.id,
                round_id=rnd.id,
                category=vtype.category,
                person_id=person,
                state=VoucherState.ISSUED,
                issued_at=from_us(at),
                valid_from=from_us(valid_from),
                valid_until=from_us(valid_until),
            )
            return ClaimAnswer(ClaimCode.ISSUED, voucher=voucher, remaining=0)
        decision = decide_claim(rnd, vtype, request.citizen, now, 0, PersonCounts())
        return ClaimAnswer(decision.code, decision.reason, remaining=0)

    async def decide(self, client: AsyncRedis, shard: int, items: list[_Claim]) -> None:
        """Send `items` (all of one home shard) as one script call and answer each."""
        tag = self.layout.tag(shard)
        claims = orjson.dumps([_claim_args(item) for item in items])
        try:
            results = await connect.run_async(
                client, CLAIM_SCRIPT, self.layout.stream(shard), tag, claims
            )
        except Exception as error:  # every claim is answered, whatever the client raised
            failure = StorageUnavailable(f"claim not recorded: {error}")
            for item in items:
                self._finish(item, failure)
            return
        short: list[_Claim] = []
        for item, raw in zip(items, results, strict=True):
            if (
                raw[0] == "S"
                and item.attempts < FALL_THROUGH_ATTEMPTS - 1
                and self.layout.shards > 1
            ):
                short.append(item)
            else:
                self._finish(item, self._answer(item, raw))
        if short:
            await self._fall_through(client, shard, short)

    def _answer(self, item: _Claim, raw: str) -> ClaimAnswer | BaseException:
        code, _, rest = raw.partition("|")
        if code == "I":
            return ClaimAnswer(ClaimCode.ISSUED, voucher=item.voucher, remaining=int(rest))
        if code == "R":
            return self._repeat(item, rest)
        if code == "U":
            return StorageUnavailable(f"campaign '{self._campaign.id}' is not loaded into Redis")
        if code == "S":
            self._all_gone(item.vtype.id)
        return refusal(item.rnd, item.vtype, item.request, item.now, code, rest)

    def _repeat(self, item: _Claim, stored: str) -> ClaimAnswer:
        type_id, voucher_id, at, valid_from, valid_until, left = stored.split("|")
        if type_id != item.vtype.id:
            return _conflict(type_id)
        voucher = replace(
            item.voucher,
            id=voucher_id,
            issued_at=from_us(int(at)),
            valid_from=from_us(int(valid_from)),
            valid_until=from_us(int(valid_until)),
        )
        return ClaimAnswer(ClaimCode.ISSUED, voucher=voucher, remaining=int(left))

    async def _fall_through(self, client: AsyncRedis, shard: int, items: list[_Claim]) -> None:
        """The home shard is out: borrow stock from the others, then try again."""
        by_type: dict[str, list[_Claim]] = defaultdict(list)
        for item in items:
            item.attempts += 1
            by_type[item.vtype.id].append(item)
        retry: list[_Claim] = []
        for type_id, waiting in by_type.items():
            if await self._borrow(client, shard, type_id, len(waiting)) > 0:
                retry += waiting
                continue
            self._all_gone(type_id)
            for item in waiting:
                item.attempts = FALL_THROUGH_ATTEMPTS  # nothing anywhere: answer sold out
            retry += waiting
        await self.decide(client, shard, retry)

    async def _borrow(self, client: AsyncRedis, to: int, type_id: str, want: int) -> int:
        others = [s for s in range(self.layout.shards) if s != to]
        random.shuffle(others)
        got = 0
        try:
            for lender in others:
                move_id = self._ids.new_id("m")
                n = int(
                    await connect.run_async(
                        client, LEND_SCRIPT, self.layout.stream(lender),
                        self.layout.tag(lender), type_id, want - got, move_id, to,
                    )
                )  # fmt: skip
                if n > 0:
                    await connect.run_async(
                        client, BORROW_SCRIPT, self.layout.stream(to),
                        self.layout.tag(to), type_id, n, move_id,
                    )  # fmt: skip
                    got += n
                if got >= want:
                    break
        except Exception:
            return got  # a lent move not yet received is completed by the persister
        return got

    def _all_gone(self, type_id: str) -> None:
        """Every shard is out of `type_id`: remember who got one, then answer from memory."""
        with self._lock:
            if type_id in self._sold_out or type_id in self._finding:
                return
            self._finding.add(type_id)
        threading.Thread(
            target=self._learn_sold_out, args=(type_id,), daemon=True, name="xfq-sold-out"
        ).start()

    def _learn_sold_out(self, type_id: str) -> None:
        try:
            issued = self._issued_log.of_type(type_id)
        except Exception:  # Redis away or the engine closed: ask Redis again next time
            with self._lock:
                self._finding.discard(type_id)
            return
        with self._lock:
            self._sold_out[type_id] = issued
            self._finding.discard(type_id)

    # --- loops ---------------------------------------------------------------------------

    def _batcher(self, loop: asyncio.AbstractEventLoop) -> _Batcher:
        batcher = self._batchers.get(loop)
        if batcher is None:
            with self._lock:
                batcher = self._batchers.get(loop)
                if batcher is None:
                    client = connect.async_client(self._url, self.cluster)
                    batcher = _Batcher(self, loop, client, self._tuning)
                    self._batchers[loop] = batcher
        return batcher

    def _add_here(self, item: _Claim) -> None:
        self._batcher(asyncio.get_running_loop()).add(item)

    def _own_loop(self) -> _LoopThread:
        with self._lock:
            if self._own is None:
                self._own = _LoopThread()
            return self._own


class _Batcher:
    """Gathers one loop's claims per home shard and sends each shard's claims as one call."""

    def __init__(
        self,
        engine: RedisClaimEngine,
        loop: asyncio.AbstractEventLoop,
        client: AsyncRedis,
        tuning: EngineTuning,
    ) -> None:
        self._engine = engine
        self._loop = loop
        self._client = client
        self._tuning = tuning
        self._pending: dict[int, list[_Claim]] = defaultdict(list)
        self._count = 0
        self._timer: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready: asyncio.Future[None] | None = None

    async def _initialized(self) -> AsyncRedis:
        """A Cluster client learns the slots once, before any concurrent command."""
        if self._ready is None:
            self._ready = self._loop.create_future()
            try:
                if isinstance(self._client, AsyncCluster):
                    await self._client.initialize()
            except Exception as error:
                ready, self._ready = self._ready, None
                ready.set_exception(error)
                ready.exception()  # retrieved: the waiters see it
                raise
            self._ready.set_result(None)
        await asyncio.shield(self._ready)
        return self._client

    async def _decide(self, shard: int, items: list[_Claim]) -> None:
        try:
            client = await self._initialized()
        except Exception as error:
            for item in items:
                self._engine._finish(item, StorageUnavailable(f"Redis unavailable: {error}"))
            return
        await self._engine.decide(client, shard, items)

    def add(self, item: _Claim) -> None:
        self._pending[item.shard].append(item)
        self._count += 1
        if self._count >= self._tuning.max_batch:
            self._flush()
        elif self._timer is None:
            if self._tuning.window_s > 0:
                self._timer = self._loop.call_later(self._tuning.window_s, self._flush)
            else:
                self._timer = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending, self._count = self._pending, defaultdict(list), 0
        for shard, items in pending.items():
            task = self._loop.create_task(self._decide(shard, items))
            self._tasks.add(task)  # keep a reference until done
            task.add_done_callback(self._tasks.discard)


class _LoopThread:
    """An event loop on a thread of its own, for callers that are not on a loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="xfq-redis")
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _claim_args(item: _Claim) -> list[str]:
    eligible = item.rnd.eligibility.refusal(item.request.citizen) is None
    v = item.voucher
    return [
        str(to_us(item.now)),
        v.person_id,
        item.request.idempotency_key,
        v.type_id,
        "1" if eligible else "0",
        v.id,
        str(to_us(v.valid_from)),
        str(to_us(v.valid_until)),
    ]


def _conflict(type_id: str) -> ClaimAnswer:
    return ClaimAnswer(
        ClaimCode.IDEMPOTENCY_CONFLICT,
        f"this idempotency key was used for a claim of {type_id}",
    )


def refusal(
    rnd: Round, vtype: VoucherType, request: ClaimRequest, now: datetime, code: str, rest: str
) -> ClaimAnswer:
    """The script's refusal, worded by the domain from what the script saw (its window may be
    newer than this process's campaign: an operator moved it in another process)."""
    counts, remaining = PersonCounts(), 1
    tz = rnd.opens_at.tzinfo
    if code == "N":
        rnd = replace(rnd, opens_at=from_us(int(rest)).astimezone(tz))
    elif code == "C":
        closes = from_us(int(rest)).astimezone(tz)
        rnd = replace(rnd, opens_at=min(rnd.opens_at, now), claim_closes_at=closes)
    else:  # the script found the round open
        rnd = replace(
            rnd,
            opens_at=min(rnd.opens_at, now),
            claim_closes_at=max(rnd.claim_closes_at, now + timedelta(microseconds=1)),
        )
    if code in ("L", "S"):
        of_type, of_category, of_round = (int(n) for n in rest.split("|"))
        counts = PersonCounts(of_type, of_category, of_round)
        remaining = 0 if code == "S" else 1
    decision = decide_claim(rnd, vtype, request.citizen, now, remaining, counts)
    # the script's code stands; the two differ only while this process's campaign is older
    # than Redis's rounds (tests/integration checks that they agree on the same rules)
    return ClaimAnswer(SCRIPT_CODES[code], decision.reason, remaining=0 if code == "S" else None)


SCRIPT_CODES: dict[str, ClaimCode] = {
    "I": ClaimCode.ISSUED,
    "N": ClaimCode.NOT_OPEN,
    "C": ClaimCode.CLOSED,
    "E": ClaimCode.NOT_ELIGIBLE,
    "L": ClaimCode.LIMIT_REACHED,
    "S": ClaimCode.SOLD_OUT,
}
