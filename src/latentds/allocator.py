"""Keep freed tensor memory in the process during CPU training, instead of handing it back to the OS each step.

glibc's malloc serves large blocks (over its mmap threshold, at most 32 MiB) with ``mmap`` and unmaps them when
freed, and returns the free top of its heap to the OS (``M_TRIM_THRESHOLD``). A CPU training step frees and
allocates the same activations and gradients every step, so each step pays for it again in page faults: the
kernel maps and zeroes every page anew. Measured with ``python benchmarks/allocator.py`` (zoo/dcgan at 32 px,
width 64, batch 64, one thread): 67,375 page faults and 189 ms of system time a step against 816 ms of user time;
with both thresholds fixed, 711 page faults and 2 ms, the step 1.25 times cheaper in CPU (docs/performance.md).
Either threshold alone does not help; both together do.

``keep_freed_memory()`` fixes both (``mallopt``) once per process, before a training loop starts: blocks up to
32 MiB (the most glibc's own sliding threshold reaches on 64-bit) come from the heap and are reused, and up to
1 GiB free at the heap's top stays with the process, which is what a loop that reallocates the same sizes every
step wants. Larger blocks are still mapped and unmapped: with a 1 GiB mmap threshold, a loop allocating a 64 MiB
block and then a small one it keeps grew to 13 GiB in 200 rounds (glibc 2.36 never reuses a freed aligned block
for the next aligned request of its size), against 0.6 GiB either way at 32 MiB. An inference loop (a VAE
encoding 300 batches, keeping its codes) peaks within 10% of the default's memory with 4% of its page faults. Nothing changes where the libc is not glibc, and a
user's own setting wins: with ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES`` in the
environment, or another allocator preloaded (``LD_PRELOAD``, e.g. jemalloc), this does nothing. Results are the
same bytes either way: only where memory comes from changes.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 32 << 20  # blocks up to 32 MiB come from the heap and are reused, not unmapped
TRIM_THRESHOLD = 1 << 30  # up to 1 GiB free at the heap's top stays with the process
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); whether they are now raised."""
    global _applied
    if _applied is None:
        _applied = _raise_thresholds()
    return _applied


def _raise_thresholds() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(os.environ.get(name) for name in _USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own libc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the mmap threshold first: setting it fixes the trim threshold too, which is then raised
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
