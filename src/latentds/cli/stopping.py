"""How every long command stops: Ctrl-C, SIGTERM and SIGHUP unwind it the same way (workers stopped, locks
released, partial files removed), then one line says what was kept and how to go on, and the exit code is 130
(Ctrl-C) or 128 + the signal (143 for SIGTERM, 129 for SIGHUP), as a shell reports for a killed process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import click


@contextlib.contextmanager
def interruptible(hint: str | Callable[[], str | None]):
    """Run the block with SIGTERM/SIGHUP raised as KeyboardInterrupt; on any of the three, print
    "Interrupted: HINT" (or "Stopped by SIGTERM: HINT") and exit. ``hint`` may be a function, called then
    (None: print nothing, e.g. on a DDP rank other than 0)."""
    from latentds.shardsets.processes import stop_on_signals  # noqa: PLC0415

    try:
        with stop_on_signals():
            yield
    except BaseException as error:  # noqa: BLE001  (re-raised unless it is, or was caused by, an interrupt)
        e = _interrupt_in(error)
        if e is None:
            raise
        what = f"Stopped by {e.args[0]}" if getattr(e, "signum", None) else "Interrupted"
        text = hint() if callable(hint) else hint
        if text:
            click.echo(f"{what}: {text}", err=True)
        raise SystemExit(getattr(e, "exit_code", 130)) from None


def _interrupt_in(error: BaseException) -> KeyboardInterrupt | None:
    """``error`` if it is a KeyboardInterrupt, or the one that caused it: an interrupt that lands inside a C
    extension's import or a library's handler can come out wrapped ("ImportError: initialization failed")."""
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, KeyboardInterrupt):
            return error
        if isinstance(error, SystemExit):
            return None
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None
