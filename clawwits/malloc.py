"""glibc's malloc, told to keep the memory a request frees for the next one.

By default glibc serves a block of more than 128 KiB (a threshold it raises as such blocks are
freed) from a mapping of its own and gives memory back to the system once more than twice that
lies free at the top of the heap. A request that builds large temporaries then touches freshly
mapped pages each time: screening a 32 KB prompt makes numpy arrays of hundreds of KiB, and the
long spaced runs of `benchmarks/screening.py` cost 190-400 page faults and 0.2-0.4 ms of kernel
time a screen that way (none with the thresholds below).

Blocks up to `MMAP_THRESHOLD` come from the heap, and up to `TRIM_THRESHOLD` may lie free at its
top before any is given back: a worker keeps at most that much more resident than it uses.
Settings of one's own (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` in the environment,
read by glibc itself) are left alone, as is any other C library.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 16 * 1024 * 1024
# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_OWN_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Set the thresholds for this process (and the workers it forks); whether they were set."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in _OWN_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error; both are set whatever the first returned.
    mapped = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trimmed = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return mapped == 1 and trimmed == 1
