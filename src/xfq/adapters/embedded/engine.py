"""The embedded claim engine: decisions in process memory, answers after a group commit.

One process owns a ledger's engine at a time (an exclusive lock file), because the counters in
memory are the authority for stock and per-person limits between restarts. On start the
counters are rebuilt from the ledger, so a crash loses nothing that was answered `issued`.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from xfq.adapters.sql.ledger import SqlLedger
from xfq.adapters.sql.rollovers import SqlRolloverStore
from xfq.adapters.sql.times import EPOCH
from xfq.domain.campaign import Campaign, IssuanceMode, Round, VoucherType
from xfq.domain.claim import ISSUE, ClaimCode, PersonCounts, decide_claim
from xfq.domain.eligibility import Citizen
from xfq.domain.errors import StorageUnavailable, UnknownObject, XfqError
from xfq.domain.quota import assisted_pool, district_pool, pools_of, type_of_pool
from xfq.domain.rollover import RolloverMove
from xfq.domain.voucher import Voucher, new_voucher
from xfq.ports import ClaimAnswer, ClaimRequest, IdSource, Reply


class EngineLocked(XfqError):
    code = "engine_locked"


@dataclass
class _Claim:
    """A claim answered `issued`, or in flight: repeats of its key wait for the same answer."""

    type_id: str
    answer: ClaimAnswer | None = None
    first_reply: Reply | None = None
    waiting: list[Reply] = field(default_factory=list)  # repeats that came while in flight
    voucher: Voucher | None = None
    remaining: int = 0
    pool: str | None = None  # the quota it was taken from, when not the type's own stock


@dataclass(frozen=True)
class _Rules:
    """What a claim checks beyond a plain grab: a household cap, a quota pool."""

    household_cap: int | None
    districted: bool  # the type's app stock is split by district
    pool: str | None = None  # a channel's reserve (the assisted channel)


class EmbeddedClaimEngine:
    """Implements `xfq.ports.ClaimEngine` for one process over a `SqlLedger`."""

    def __init__(
        self, campaign: Campaign, ledger: SqlLedger, ids: IdSource, lock_path: Path | None
    ) -> None:
        self._campaign = campaign
        self._ledger = ledger
        self._ids = ids
        self._lock_file = _take_lock(lock_path) if lock_path is not None else None
        self._lock = threading.Lock()
        # Stock by pool: a type's own id, plus its quota pools (domain/quota.py) if any.
        self._remaining = {
            pool: n for r in campaign.rounds for t in r.types for pool, n in pools_of(t).items()
        }
        self._pools = {t.id: list(pools_of(t)) for r in campaign.rounds for t in r.types}
        # Plain dicts read with .get: a Counter's missing key costs a Python-level call.
        self._of_type: dict[tuple[str, str], int] = {}
        self._of_category: dict[tuple[str, str, str], int] = {}
        self._of_round: dict[tuple[str, str], int] = {}
        self._claims: dict[tuple[str, str], _Claim] = {}
        # Households: member -> head, and vouchers of a round held across a household.
        self._household_of: dict[str, str] = {}
        self._of_household: dict[tuple[str, str], int] = {}
        self._grab_types = _grab_types(campaign)
        self._closed = False
        self._rolled: set[str] = set()  # rollover moves whose stock is counted
        self._last_window: tuple[object, tuple[datetime, datetime]] = (None, (EPOCH, EPOCH))
        try:
            self._rebuild()
        except BaseException:
            # An engine that did not start lets the lock go: the one it was to replace starts
            # again in this process (a campaign upload that failed).
            self.close()
            raise

    def _rebuild(self) -> None:
        self.top_up(SqlRolloverStore(self._ledger.engine).moves())  # from earlier rounds
        self._household_of = self._ledger.households()
        pools = self._ledger.voucher_pools()
        for voucher, claim_key in self._ledger.issued_vouchers():
            rnd, vtype = self._campaign.voucher_type(voucher.type_id)
            pool = pools.get(voucher.id)
            if pool is not None:
                self._move(voucher.type_id, pool, +1)
            self._count(rnd, vtype, voucher.person_id, +1)
            self._count_household(rnd, voucher.person_id, +1)
            answer = ClaimAnswer(ClaimCode.ISSUED, voucher=voucher)
            self._claims[(voucher.person_id, claim_key)] = _Claim(voucher.type_id, answer)

    def _count(self, rnd: Round, vtype: VoucherType, person_id: str, step: int) -> None:
        self._remaining[vtype.id] -= step
        of_type, of_category = (person_id, vtype.id), (person_id, rnd.id, vtype.category)
        of_round = (person_id, rnd.id)
        self._of_type[of_type] = self._of_type.get(of_type, 0) + step
        self._of_category[of_category] = self._of_category.get(of_category, 0) + step
        self._of_round[of_round] = self._of_round.get(of_round, 0) + step
        assert self._remaining[vtype.id] >= 0, f"oversold {vtype.id}"

    def remaining(self, type_id: str) -> int:
        """What is left of a type, over all its pools."""
        with self._lock:
            return sum(self._remaining[pool] for pool in self._pools[type_id])

    def sold_out(self, type_id: str) -> bool:
        """Every pool of the type is empty. Read without the lock: a hint for admission control,
        the claim itself is decided under the lock."""
        pools = self._pools.get(type_id)
        return pools is not None and not any(self._remaining[pool] for pool in pools)

    def answers_from_memory(self, type_id: str, now: datetime) -> bool:
        """Sold out, or its round not open yet: answered without a ledger write."""
        found = self._grab_types.get(type_id)
        return found is not None and (now < found[0].opens_at or self.sold_out(type_id))

    def answer_from_memory(self, request: ClaimRequest, now: datetime) -> ClaimAnswer | None:
        """None: `submit` answers these on the caller's thread already, from the same memory."""
        return None

    def pool_stock(self) -> dict[str, int]:
        """What is left in each pool: `type`, `type#assisted`, `type@district`."""
        with self._lock:
            return dict(self._remaining)

    def _move(self, type_id: str, pool: str, step: int) -> None:
        """Take `step` from `pool` instead of the type's own stock (`_count` takes from that)."""
        if pool != type_id:
            self._remaining[type_id] += step
            self._remaining[pool] -= step
            assert self._remaining[pool] >= 0, f"oversold {pool}"

    def replace_campaign(self, campaign: Campaign) -> None:
        """Decide from now on by `campaign`: the same voucher types, other claim windows."""
        same = {t.id: t.count for r in campaign.rounds for t in r.types}
        with self._lock:
            known = {t.id: t.count for r in self._campaign.rounds for t in r.types}
            if same != known:
                raise XfqError("a running engine can change claim windows, not voucher types")
            self._campaign = campaign
            self._grab_types = _grab_types(campaign)

    def join_household(self, head_id: str, members: list[str]) -> None:
        """Count `members` (recorded in the ledger first) in `head_id`'s household from now on;
        vouchers they already hold count towards its caps."""
        with self._lock:
            for member in members:
                if self._household_of.get(member) == head_id:
                    continue
                assert member not in self._household_of, (member, head_id)
                self._household_of[member] = head_id
                for rnd in self._campaign.rounds:
                    held = self._of_round.get((member, rnd.id), 0)
                    if held and rnd.limits.per_household is not None:
                        key = (head_id, rnd.id)
                        self._of_household[key] = self._of_household.get(key, 0) + held

    def household_held(self, head_id: str, round_id: str) -> int:
        with self._lock:
            return self._of_household.get((head_id, round_id), 0)

    def note_issued(self, vouchers: list[tuple[Voucher, str]]) -> None:
        """Count vouchers another path (a lottery draw) wrote to the ledger, with their keys."""
        with self._lock:
            for voucher, key in vouchers:
                if (voucher.person_id, key) in self._claims:
                    continue  # counted already (a draw resumed after a restart)
                rnd, vtype = self._campaign.voucher_type(voucher.type_id)
                self._count(rnd, vtype, voucher.person_id, +1)
                self._count_household(rnd, voucher.person_id, +1)
                answer = ClaimAnswer(ClaimCode.ISSUED, voucher=voucher)
                self._claims[(voucher.person_id, key)] = _Claim(vtype.id, answer)

    def _count_household(self, rnd: Round, person_id: str, step: int) -> None:
        head = self._household_of.get(person_id)
        if head is not None and rnd.limits.per_household is not None:
            key = (head, rnd.id)
            self._of_household[key] = self._of_household.get(key, 0) + step

    def top_up(self, moves: Iterable[RolloverMove]) -> int:
        """The stock of rollover moves recorded in the ledger, each move once however often
        this is called (those recorded before the start are counted then); the vouchers added
        now."""
        added = 0
        with self._lock:
            for m in moves:
                if m.adds_stock and m.into_type_id and m.key not in self._rolled:
                    self._rolled.add(m.key)
                    self._remaining[m.into_type_id] += m.added_count
                    added += m.added_count
        return added

    def unpersisted(
        self, in_ledger: Mapping[str, int], moves: Sequence[RolloverMove]
    ) -> dict[str, int]:
        """Nothing: a claim is answered `issued` only after the ledger's commit."""
        return {}

    def stock(self) -> dict[str, int]:
        """Remaining count of every voucher type, as one consistent snapshot."""
        totals: dict[str, int] = {}
        with self._lock:
            for pool, n in self._remaining.items():
                type_id = type_of_pool(pool)
                totals[type_id] = totals.get(type_id, 0) + n
        return totals

    def submit(self, request: ClaimRequest, now: datetime, reply: Reply) -> None:
        found = self._grab_types.get(request.type_id)
        if found is None:
            reply(self._not_grabbed(request.type_id))
            return
        rnd, vtype, rules = found
        with self._lock:
            admitted = self._admit(request, rnd, vtype, rules, now, reply)
        if admitted is None:
            return  # the first claim of this key is in flight; `reply` is answered with it
        if not isinstance(admitted, _Claim):
            reply(admitted)
            return
        self._record(admitted, rnd, vtype, request.idempotency_key)

    def submit_assisted(self, request: ClaimRequest, now: datetime, reply: Reply) -> None:
        """A claim by staff at a service desk for `request.citizen`, from the type's reserve."""
        found = self._grab_types.get(request.type_id)
        if found is None:
            reply(self._not_grabbed(request.type_id))
            return
        rnd, vtype, rules = found
        if not vtype.assisted:
            reason = f"{vtype.label} has no reserve for the assisted channel"
            reply(ClaimAnswer(ClaimCode.NOT_ELIGIBLE, reason))
            return
        cap = None if rules is None else rules.household_cap
        assisted = _Rules(cap, districted=False, pool=assisted_pool(vtype.id))
        with self._lock:
            admitted = self._admit(request, rnd, vtype, assisted, now, reply)
        if admitted is None:
            return
        if not isinstance(admitted, _Claim):
            reply(admitted)
            return
        self._record(admitted, rnd, vtype, request.idempotency_key)

    def _record(self, admitted: _Claim, rnd: Round, vtype: VoucherType, key: str) -> None:
        """Hand an admitted claim to the ledger's writer; it is answered after the commit."""
        voucher = admitted.voucher
        assert voucher is not None
        done = functools.partial(
            self._settle, admitted, rnd, vtype, voucher, key, admitted.remaining
        )
        try:
            self._ledger.append_voucher(voucher, key, done, admitted.pool)
        except Exception as error:  # the writer refused it: the claim never happened
            self._undo(admitted, rnd, vtype, voucher, key, error)

    def _not_grabbed(self, type_id: str) -> ClaimAnswer:
        try:
            rnd, vtype = self._campaign.voucher_type(type_id)
        except UnknownObject as error:
            return ClaimAnswer(ClaimCode.UNKNOWN_TYPE, str(error))
        return ClaimAnswer(
            ClaimCode.NOT_ELIGIBLE,
            f"{vtype.label} of round {rnd.id} is given by {rnd.issuance}, not grabbed:"
            " register for its draw instead",
        )

    def _admit(
        self,
        request: ClaimRequest,
        rnd: Round,
        vtype: VoucherType,
        rules: _Rules | None,
        now: datetime,
        reply: Reply,
    ) -> ClaimAnswer | BaseException | _Claim | None:
        """Under the lock: an answer to give now, a new in-flight claim, or None (queued)."""
        if self._closed:  # a successor may hold the lock file and decide: this one must not
            return StorageUnavailable("this claim engine is closed")
        person, key = request.citizen.person_id, request.idempotency_key
        prior = self._claims.get((person, key))
        if prior is not None:
            return self._repeat(prior, request.type_id, reply)
        if rules is not None:  # only rounds and types with more rules pay for them
            return self._admit_with_rules(request, rnd, vtype, rules, now, reply)
        answer = self._decide(request, rnd, vtype, now)
        if answer is not None:
            return answer
        claim = _Claim(
            vtype.id,
            first_reply=reply,
            voucher=self._new_voucher(rnd, vtype, person, now),
            remaining=self._remaining[vtype.id],
        )
        self._claims[(person, key)] = claim
        return claim

    def _decide(
        self, request: ClaimRequest, rnd: Round, vtype: VoucherType, now: datetime
    ) -> ClaimAnswer | None:
        """The answer if it changes nothing; None after counting an issued claim."""
        person = request.citizen.person_id
        counts = PersonCounts(
            self._of_type.get((person, vtype.id), 0),
            self._of_category.get((person, rnd.id, vtype.category), 0),
            self._of_round.get((person, rnd.id), 0),
        )
        remaining = self._remaining[vtype.id]
        decision = decide_claim(rnd, vtype, request.citizen, now, remaining, counts)
        if decision is not ISSUE:
            return ClaimAnswer(decision.code, decision.reason, None, remaining)
        self._count(rnd, vtype, person, +1)
        return None

    def _admit_with_rules(
        self,
        request: ClaimRequest,
        rnd: Round,
        vtype: VoucherType,
        rules: _Rules,
        now: datetime,
        reply: Reply,
    ) -> ClaimAnswer | _Claim:
        """`_admit` for a claim from a quota pool or under a household cap."""
        pool = self._pool_for(request.citizen, vtype, rules)
        if isinstance(pool, ClaimAnswer):
            return pool
        person = request.citizen.person_id
        counts = PersonCounts(
            self._of_type.get((person, vtype.id), 0),
            self._of_category.get((person, rnd.id, vtype.category), 0),
            self._of_round.get((person, rnd.id), 0),
        )
        remaining = self._remaining[pool]
        decision = decide_claim(rnd, vtype, request.citizen, now, remaining, counts)
        if decision is not ISSUE:
            return ClaimAnswer(decision.code, decision.reason, None, remaining)
        if rules.household_cap is not None:
            full = self._household_full(rnd, person, rules.household_cap, remaining)
            if full is not None:
                return full
        self._move(vtype.id, pool, +1)
        self._count(rnd, vtype, person, +1)
        claim = _Claim(
            vtype.id,
            first_reply=reply,
            voucher=self._new_voucher(rnd, vtype, person, now),
            remaining=self._remaining[pool],
            pool=None if pool == vtype.id else pool,
        )
        self._claims[(person, request.idempotency_key)] = claim
        return claim

    def _pool_for(self, citizen: Citizen, vtype: VoucherType, rules: _Rules) -> str | ClaimAnswer:
        if rules.pool is not None:
            return rules.pool
        if not rules.districted:
            return vtype.id
        if citizen.district is None:
            reason = f"{vtype.label} is shared out by district; no district is known for you"
            return ClaimAnswer(ClaimCode.NOT_ELIGIBLE, reason)
        pool = district_pool(vtype.id, citizen.district)
        if pool not in self._remaining:
            reason = f"{vtype.label} has no quota for district {citizen.district!r}"
            return ClaimAnswer(ClaimCode.NOT_ELIGIBLE, reason)
        if self._remaining[pool] == 0 and self._remaining[vtype.id] > 0:
            return vtype.id  # rolled-over stock (the type's own) is shared by its districts
        return pool

    def _household_full(
        self, rnd: Round, person: str, cap: int, remaining: int
    ) -> ClaimAnswer | None:
        """Refuse past the household's cap; else count the claim for the household."""
        head = self._household_of.get(person)
        if head is None:
            return None
        key = (head, rnd.id)
        held = self._of_household.get(key, 0)
        if held >= cap:
            reason = f"at most {cap} voucher(s) of round {rnd.id} per household"
            return ClaimAnswer(ClaimCode.LIMIT_REACHED, reason, None, remaining)
        self._of_household[key] = held + 1
        return None

    @staticmethod
    def _repeat(prior: _Claim, type_id: str, reply: Reply) -> ClaimAnswer | None:
        """The earlier answer to this key, or None after queueing `reply` for it."""
        if prior.type_id != type_id:
            return ClaimAnswer(
                ClaimCode.IDEMPOTENCY_CONFLICT,
                f"this idempotency key was used for a claim of {prior.type_id}",
            )
        if prior.answer is None:
            prior.waiting.append(reply)
            if prior.answer is None:
                return None
            prior.waiting.remove(reply)  # settled meanwhile (`_settle` takes no lock)
        return prior.answer

    def _new_voucher(self, rnd: Round, vtype: VoucherType, person: str, now: datetime) -> Voucher:
        window = self._window(rnd, now)
        return new_voucher(
            self._ids.new_id("v"), vtype.id, rnd.id, vtype.category, person, now, window
        )

    def _window(self, rnd: Round, now: datetime) -> tuple[datetime, datetime]:
        """Validity of a voucher claimed `now`; claims of one instant share it, so keep the last."""
        key = (rnd.id, now)
        if self._last_window[0] != key:
            self._last_window = (key, rnd.validity.window(rnd.opens_at, now, self._campaign.tz))
        return self._last_window[1]

    def _settle(
        self,
        claim: _Claim,
        rnd: Round,
        vtype: VoucherType,
        voucher: Voucher,
        key: str,
        remaining: int,
        ok: bool,
        error: object,
    ) -> None:
        """Runs on the writer's thread after its commit.

        The success path takes no engine lock: the writer is often short of the GIL, and a lock
        it held while waiting for the GIL stalled every claim behind it. Publishing `answer`
        before looking at `waiting` pairs with the re-check in `_repeat`.
        """
        if not ok:
            self._undo(claim, rnd, vtype, voucher, key, error)
            return
        claim.answer = answer = ClaimAnswer(ClaimCode.ISSUED, voucher=voucher, remaining=remaining)
        first, claim.first_reply = claim.first_reply, None
        if claim.waiting:
            with self._lock:
                waiting, claim.waiting = claim.waiting, []
            for reply in waiting:
                reply(answer)
        if first is not None:
            first(answer)

    def _undo(
        self,
        claim: _Claim,
        rnd: Round,
        vtype: VoucherType,
        voucher: Voucher,
        key: str,
        error: object,
    ) -> None:
        """Not durable, so the claim never happened: give the stock and the limit back."""
        failure = StorageUnavailable(f"claim not recorded: {error}")
        with self._lock:
            self._count(rnd, vtype, voucher.person_id, -1)
            if claim.pool is not None:
                self._move(vtype.id, claim.pool, -1)
            self._count_household(rnd, voucher.person_id, -1)
            del self._claims[(voucher.person_id, key)]
            replies = [r for r in (claim.first_reply, *claim.waiting) if r is not None]
            claim.first_reply, claim.waiting = None, []
        for reply in replies:
            reply(failure)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _grab_types(campaign: Campaign) -> dict[str, tuple[Round, VoucherType, _Rules | None]]:
    """Types a claim may take at the grab, with their further rules (None: a plain grab)."""
    return {
        t.id: (r, t, _rules(r, t))
        for r in campaign.rounds
        if r.issuance is IssuanceMode.GRAB
        for t in r.types
    }


def _rules(rnd: Round, vtype: VoucherType) -> _Rules | None:
    cap, districted = rnd.limits.per_household, bool(vtype.districts)
    return None if cap is None and not districted else _Rules(cap, districted)


def _take_lock(path: Path) -> IO[str]:
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise EngineLocked(
            f"the ledger's claim engine is already running in {holder} ({path}); "
            "only one process may decide claims on an embedded ledger"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle
