"""Tune glibc's malloc for training loops that allocate many large, same-sized tensors.

By default glibc raises its mmap threshold dynamically, so tensors of a few MB to 32 MB alternate
between fresh mmaps (page faults on every step) and heap blocks that fragment. Fixing the mmap
threshold at 64 MB and the trim threshold at 256 MB keeps such tensors on a reused heap: measured
on the Baby preset, MGCN 8.1 -> 7.2 s/epoch and FREEDOM (reg 1e-4) 3.5 -> 2.6 s/epoch, at a few
tens of MB more peak RSS. Set ``MODALREC_MALLOC=default`` (or any ``MALLOC_*`` variable) to opt out.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def tune_allocator(mmap_mb: int = 64, trim_mb: int = 256) -> bool:
    """Apply the thresholds once per process on Linux/glibc; returns whether they are in effect."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("MODALREC_MALLOC") == "default":
        return False
    if any(k.startswith("MALLOC_") for k in os.environ):  # the user tunes malloc themselves
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap_mb << 20) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, trim_mb << 20) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    _done = bool(ok)
    return _done
