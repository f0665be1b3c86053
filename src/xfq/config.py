"""Settings from the environment (XFQ_*), refusing unsafe defaults outside development."""

from __future__ import annotations

import difflib
import secrets
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_KEY_BYTES = 32


class IssuerSetting(BaseModel):
    """An identity provider whose bearer tokens xfq trusts (its public key, PEM)."""

    issuer: str
    public_key_pem: str
    audience: str = "xfq"


class UnsafeSettings(ValueError):
    """A production deployment was configured with something only development may use."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XFQ_", extra="forbid")

    environment: Literal["development", "production"] = "development"
    # The ledger: a SQLite file (a path or sqlite:///path) or a postgresql://user@host/db URL.
    database_url: str = "sqlite:///var/xfq/ledger.db"
    # A PostgreSQL ledger's link (adapters/sql/link.py): a connection not made in this long, a
    # link that leaves sent data or keepalives unacknowledged this long, and a query with no
    # answer in this long fail, and the request that needed them is answered 503.
    ledger_connect_timeout_s: float = Field(default=5.0, ge=2)
    ledger_tcp_timeout_s: float = Field(default=5.0, gt=0)
    ledger_answer_timeout_s: float = Field(default=5.0, gt=0)
    # Threads per serving process for the request handlers' ledger calls (api/blocking.py). Each
    # keeps a reader connection for good and takes at most two more while it works, out of the
    # ledger engine's pool of 32 (the writer, the health check and the persister take some too).
    ledger_threads: int = Field(default=8, ge=1, le=10)
    # How long a ledger call may wait for one of those threads before it is answered 503.
    # While the link is cut each call holds its thread for one or two bounds (a pooled
    # connection's check, then a new one), and the calls behind would wait their turn for
    # ceil(queue / threads) such calls; on a healthy link calls take milliseconds.
    ledger_wait_s: float = Field(default=1.0, gt=0, le=60)
    spec_path: Path | None = None
    till_code_key: SecretStr | None = None
    personal_data_key: SecretStr | None = None
    issuers: list[IssuerSetting] = []
    dev_issuer: bool = True
    # Development with several workers: the development issuer's Ed25519 key (PEM), shared so
    # that a token one worker signed verifies in the others. Made by `xfq serve` when unset.
    dev_issuer_key: SecretStr | None = None
    # Development only: a clock that starts at this moment and moves only when told (the demo);
    # with an anchor, a clock that reads the start at that real instant and runs at real speed,
    # the same in every process given the same pair (rehearsals: rate limits refill, signed
    # timestamps age). Both with their UTC offset.
    simulated_start: datetime | None = None
    simulated_anchor: datetime | None = None
    # Claim passes (a cheap identity for the opening second, see xfq.domain.claim_pass): the
    # server's keys, newest first (the first signs, all verify; shared by every worker). Empty:
    # one key derived from XFQ_TILL_CODE_KEY. And when passes are handed out and how long they
    # live: from `lead` before a round opens, for `lifetime` or until `grace` after it closes.
    claim_pass_keys: list[SecretStr] = []
    claim_pass_lead_s: int = 3600
    claim_pass_lifetime_s: int = 7200
    claim_pass_grace_s: int = 60
    claim_rate_per_person_per_s: float = 2.0
    claim_burst_per_person: int = 6
    claim_rate_per_address_per_s: float = 2000.0
    claim_burst_per_address: int = 4000
    # Admission control per process (api/admission.py): claims past this many waiting for the
    # engine, or arriving once the oldest has waited this long, are answered 429 at once.
    claim_max_in_flight: int = Field(default=256, ge=1)
    claim_max_wait_ms: float = Field(default=250.0, gt=0)
    # Every request body (a campaign file of 1,000,000 characters, JSON-escaped, fits).
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=4096)
    # The Redis claim engine (None: the embedded one). A Cluster is recognised by asking it.
    redis_url: str | None = None
    redis_shards: int = 1  # hash-tagged slices of the stock; at least the Cluster's masters
    redis_max_batch: int = 256  # claims per script call
    redis_window_ms: float = 0.0  # 0: send what one event-loop pass gathered
    redis_persister: bool = True  # move the claim streams into the ledger in this process

    @field_validator("simulated_start", "simulated_anchor")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError(
                "needs its UTC offset, as in 2022-03-05T10:00:00+08:00 or 2022-03-05T02:00:00Z"
            )
        return value

    @model_validator(mode="after")
    def _anchor_needs_start(self) -> Settings:
        if self.simulated_anchor is not None and self.simulated_start is None:
            raise ValueError(
                "XFQ_SIMULATED_ANCHOR needs XFQ_SIMULATED_START: the anchor is the real instant"
                " at which the simulated clock reads the start"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _ledger_url(cls, value: str) -> str:
        from xfq.adapters.sql.schema import database_url

        return database_url(value)

    def checked(self) -> Settings:
        """These settings, after refusing what must never run in production."""
        if self.environment == "development":
            return self
        problems = []
        if self.simulated_start is not None:
            problems.append("XFQ_SIMULATED_START must not be set: production runs on real time")
        if self.dev_issuer:
            problems.append("XFQ_DEV_ISSUER must be false: the development issuer signs anything")
        if not self.issuers:
            problems.append("XFQ_ISSUERS must name at least one identity provider")
        for name, key in (
            ("TILL_CODE_KEY", self.till_code_key),
            ("PERSONAL_DATA_KEY", self.personal_data_key),
        ):
            if key is None or len(key.get_secret_value().encode()) < MIN_KEY_BYTES:
                problems.append(f"XFQ_{name} must be set to at least {MIN_KEY_BYTES} bytes")
        if any(len(k.get_secret_value().encode()) < MIN_KEY_BYTES for k in self.claim_pass_keys):
            problems.append(f"each of XFQ_CLAIM_PASS_KEYS must be at least {MIN_KEY_BYTES} bytes")
        if problems:
            raise UnsafeSettings("; ".join(problems))
        return self

    def key(self, name: Literal["till_code_key", "personal_data_key"]) -> bytes:
        """A configured key, or in development a fresh random one for this process."""
        value: SecretStr | None = getattr(self, name)
        if value is None:
            assert self.environment == "development"
            return secrets.token_bytes(MIN_KEY_BYTES)
        return value.get_secret_value().encode()


def settings_problems(error: ValidationError) -> list[str]:
    """Each problem of invalid settings, named by its environment variable."""
    problems = []
    for found in error.errors():
        message, loc = found["msg"].removeprefix("Value error, "), found["loc"]
        if not loc:  # a rule over several settings, whose message names them
            problems.append(message)
            continue
        inside = "".join(f"[{part}]" for part in loc[1:])
        problems.append(f"XFQ_{str(loc[0]).upper()}{inside}: {message}")
    return problems


# Variables with the settings' prefix that are read elsewhere (tools, benchmarks, tests):
# not mistakes.
_OTHER_VARIABLES = ("XFQ_BENCH_", "XFQ_SCHEMATHESIS_", "XFQ_FAULTS_", "XFQ_GC_TRACE_", "XFQ_CONV_")


def unknown_variables(environ: dict[str, str]) -> list[str]:
    """One line per `XFQ_*` variable that names no setting (pydantic ignores them: a typo in
    XFQ_REDIS_URL would run the embedded engine without a word), with the likeliest meant."""
    known = sorted(f"XFQ_{name.upper()}" for name in Settings.model_fields)
    problems = []
    for name in sorted(environ):
        if not name.startswith("XFQ_") or name in known or name.startswith(_OTHER_VARIABLES):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"{name} is not a setting{hint}")
    return problems
