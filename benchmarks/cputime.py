"""CPU time of a benchmark: this process's and its live children's (the DataLoader workers), from /proc.

On a shared machine wall-clock rates say more about the neighbours than about latentds; CPU time per image does
not (though a process contending for the cores spends somewhat more per image). Linux only (/proc)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds() -> tuple[float, float]:
    """(this process's CPU seconds, its live children's), user + system. A child that has exited is not counted:
    read this while the workers are alive."""
    tick, me, children = os.sysconf("SC_CLK_TCK"), os.getpid(), 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # fields after the name: state, ppid, ..., utime (12th), stime (13th)
            children += (int(fields[11]) + int(fields[12])) / tick
    return time.process_time(), children
