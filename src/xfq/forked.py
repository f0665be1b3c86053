"""A job run in a forked child process, to use a second core beside the parent's work."""

from __future__ import annotations

import multiprocessing
import pickle
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ForkedJobFailed(RuntimeError):
    pass


def start_forked(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` in a forked child now; the returned callable waits for its result and
    raises what it raised. The parent must hold no lock the child needs: start it between
    phases, with no writer thread running."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        try:
            outcome: tuple[bool, object] = (True, work())
        except BaseException as error:  # handed to the parent, which raises it
            outcome = (False, error)
        try:
            send.send(outcome)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            send.send((False, ForkedJobFailed(f"{outcome[1]!r} (not picklable: {error})")))

    process = context.Process(target=child, name="xfq-forked", daemon=True)
    process.start()
    send.close()

    def result() -> T:
        try:
            ok, value = receive.recv()
        except EOFError:
            process.join()
            raise ForkedJobFailed(f"the forked job died (exit code {process.exitcode})") from None
        finally:
            receive.close()
        process.join()
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    return result
