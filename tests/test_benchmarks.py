"""The benchmark scripts report CPU time beside wall time: the train benchmark counts its loader workers'."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_benchmark_counts_the_cpu_of_live_children():
    bench = _module("train")
    before = bench.cpu_seconds()
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\ntime.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        deadline = time.monotonic() + 30
        while bench.cpu_seconds() - before < 0.45 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert bench.cpu_seconds() - before >= 0.45  # the child's CPU time, though it is still running
    finally:
        child.kill()
        child.wait()
