"""keep_freed_memory: a training step's freed memory stays with the process (no page faults for the same
activations again), memory stays bounded where glibc would not reuse big blocks, a user's own allocator settings
win, and the trainer applies it. Each check of the process-wide setting runs in a process of its own."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from latentds.zoo.trainer import train
from test_zoo import tiny_recipe

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Page faults in 10 forward + backward steps of a small conv net (activations of 8 MiB), after 3 warm-up steps.
STEPS = """
import resource, torch
from latentds.allocator import keep_freed_memory
applied = keep_freed_memory() if {kept} else False
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 3, 3, padding=1))
x = torch.rand(32, 3, 32, 32)
def step():
    net.zero_grad(set_to_none=True)
    net(x).square().mean().backward()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(applied, keep_freed_memory() == applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

# A 64 MiB block, then a small tensor that is kept, 100 times: peak resident MiB.
BIG_BLOCKS = """
import resource, torch
from latentds.allocator import keep_freed_memory
assert keep_freed_memory()
kept = []
for _ in range(100):
    torch.empty(1 << 24).fill_(1.0)
    kept.append(torch.empty(100))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10)
"""


def in_process(code: str, **env) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GLIBC_TUNABLES")} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          check=True, timeout=120).stdout.split()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; elsewhere keep_freed_memory() changes nothing")
def test_a_training_step_reuses_freed_memory_and_the_users_setting_wins():
    applied, idempotent, faults = in_process(STEPS.format(kept=True))
    default = int(in_process(STEPS.format(kept=False))[2])
    assert applied == "True" and idempotent == "True"
    assert default > 20_000  # glibc's defaults: the activations' pages are mapped and zeroed again every step
    assert int(faults) < default / 10
    # the user's own threshold is left alone: the pages fault in again as with the defaults
    applied, _, faults = in_process(STEPS.format(kept=True), MALLOC_TRIM_THRESHOLD_="131072")
    assert applied == "False" and int(faults) > default / 2


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; elsewhere keep_freed_memory() changes nothing")
def test_blocks_over_the_threshold_are_still_returned_so_memory_stays_bounded():
    # with blocks this large served from the heap, glibc 2.36 keeps every one: over 6 GiB here
    assert int(in_process(BIG_BLOCKS)[0]) < 2048


def test_the_trainer_keeps_freed_memory(varied96, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("latentds.zoo.trainer.keep_freed_memory", lambda: calls.append(1) or True)
    train(tiny_recipe("vae", varied96, max_steps=2), tmp_path / "run", progress=False)
    assert calls == [1]


def test_nothing_changes_off_glibc(monkeypatch):
    from latentds import allocator

    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert allocator._raise_thresholds() is False
