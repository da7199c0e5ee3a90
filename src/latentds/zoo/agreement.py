"""What the ranks of a torchrun job agree on before each step: that each has a batch, and that none was stopped.

    with StepAgreement(world) as agree:
        while agree.go(batch is not None):   # False: some rank ran out of batches; raises: some rank was stopped
            ...

One small all-reduce on a CPU (gloo) group per step carries both flags. Ranks whose shards lost different numbers
of damaged samples end the epoch at the same step, and a signal to any one rank (SIGTERM or SIGHUP from a
scheduler or ``kill``, Ctrl-C) stops every rank at the next step: the signal is only recorded when it arrives, so
no rank leaves while the others wait for it in a collective (before, rank 0 waited in all_reduce forever). Every
rank then raises what that signal raises in one process (``Terminated``, or KeyboardInterrupt for Ctrl-C), so rank
0 prints the resume hint and each exits with 128 + the signal. A second signal to a rank that has not reached the
next step yet raises at once. The group's timeout bounds a wait for a rank that stopped answering, and a lost rank
is one line, not a hang or a gloo traceback. In one process (``world == 1``) a signal raises at once, as outside
the loop, except while DataLoader workers start (``deferred``: an exception raised in an at-fork hook is swallowed
and printed as "Exception ignored") or when it interrupts a weakref callback or a finaliser (the same); it is
recorded too, and the next step raises it where Python would have swallowed it.
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import threading
import weakref

import torch

from latentds.errors import LostRankError, first_line
from latentds.shardsets.processes import Terminated

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
TIMEOUT = datetime.timedelta(minutes=5)  # the longest a rank waits at a step for the others (rank 0 may be saving)


def stop_error(signum: int) -> KeyboardInterrupt:
    """What a signal raises in a latentds process: KeyboardInterrupt for Ctrl-C, else Terminated(signum)."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _swallowing(frame) -> bool:
    """True when ``frame`` (where a signal arrived) runs inside a weakref callback or a ``__del__``: Python ignores an
    exception raised there (it prints it and goes on)."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename == weakref.__file__:
            return True
        frame = frame.f_back
    return False


class StepAgreement:
    """See the module docstring. ``go(have)`` each step; the block restores the signal handlers it found."""

    def __init__(self, world: int):
        self.world, self.group, self.signum, self.previous, self.deferring = world, None, 0, {}, False

    def __enter__(self) -> StepAgreement:
        if self.world > 1:
            self.group = torch.distributed.new_group(backend="gloo", timeout=TIMEOUT)
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                if signal.getsignal(s) is not signal.SIG_IGN:  # nohup's SIGHUP, a script's background Ctrl-C
                    self.previous[s] = signal.signal(s, self._record)
        return self

    def _record(self, signum, frame) -> None:
        first = not self.signum
        self.signum = self.signum or signum
        # one process, or a second signal: stop now -- unless the signal interrupted a weakref callback or a
        # finaliser, where Python swallows the exception and prints it ("Exception ignored ... Traceback"):
        # there it is only recorded, and the next step raises it
        if (not first or (self.group is None and not self.deferring)) and not _swallowing(frame):
            raise stop_error(signum)

    @contextlib.contextmanager
    def deferred(self):
        """Signals only recorded within the block, raised (in one process) when it ends: for starting DataLoader
        workers, whose fork hooks would swallow the exception (and print it as "Exception ignored")."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.signum and self.group is None:
            raise stop_error(self.signum)

    def __exit__(self, kind, error, tb) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        if self.signum and kind is None:  # a signal after the last step (or one swallowed): it still stops
            raise stop_error(self.signum)

    def go(self, have: bool, step: int = 0) -> bool:
        """True while every rank has a batch; raises (on every rank alike) when any rank was stopped."""
        if self.group is None:
            if self.signum:  # raised when it came, but swallowed where Python ignores errors (an at-fork hook)
                raise stop_error(self.signum)
            return have
        flags = torch.tensor([0 if have else 1, self.signum], dtype=torch.int32)
        try:
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX, group=self.group)
        except RuntimeError as e:  # a rank died (connection closed) or stopped answering (timeout)
            raise LostRankError(f"rank {torch.distributed.get_rank()} lost the other ranks before step {step + 1} "
                                f"({first_line(e, 100)}); run the same command with --resume") from None
        lacking, signum = flags.tolist()
        if signum:
            self.signum = 0  # raised here: not again on leaving the block
            raise stop_error(signum)
        return not lacking
