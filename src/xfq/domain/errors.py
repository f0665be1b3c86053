"""One error tree for what goes wrong outside the user's control or against the rules.

Outcomes a user causes (sold out, below threshold, ...) are *results with codes*, not errors;
see `claim.ClaimCode` and `checkout.CheckoutCode`. These exceptions are for broken input files,
impossible state changes and unavailable storage. Each has a stable `code` the API can map.
"""

from __future__ import annotations


class XfqError(Exception):
    code = "xfq_error"


class SpecError(XfqError):
    """A campaign file is malformed; `problems` lists each one with its place."""

    code = "spec_invalid"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class IllegalTransition(XfqError):
    """A voucher was asked to move between states its lifecycle does not connect."""

    code = "illegal_transition"


class StorageUnavailable(XfqError):
    """The ledger could not make a decision durable; the caller must not assume it happened."""

    code = "storage_unavailable"


class CampaignChangeRefused(XfqError):
    """An uploaded campaign changes what the running claim engine cannot change (a voucher type
    removed, a count lowered below what was claimed); nothing was changed."""

    code = "campaign_change_refused"


class UnknownObject(XfqError):
    """A round, voucher type, merchant or voucher id that the campaign or ledger does not know."""

    code = "unknown_object"


class IdempotencyConflict(XfqError):
    """An idempotency key was used again for a different request."""

    code = "idempotency_conflict"


class ReportInputError(XfqError):
    """A report cannot be made from what it was given: no ledger, an unknown round, a bad feed."""

    code = "report_input_invalid"
