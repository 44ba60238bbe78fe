"""Host memory policy for training on XLA:CPU.

XLA:CPU allocates a fresh buffer for each step's temporaries (hundreds of MB for
SE-MobileNetV1 at batch 64). glibc serves such blocks with mmap and unmaps them on
free, so every step faults in and zeroes all of that memory again: about 210k
minor page faults and 30% of the process's CPU time in the kernel (measured,
benchmarks/RESULTS.md). Keeping every allocation in one heap that is never
trimmed lets the next step reuse the same pages instead.

Opt-in (train.py: `config.host_memory_reuse=True`; the step benchmark applies it by default):
in a whole training run, tf.data's and XLA's threads take small blocks out of the freed
temporaries between steps, the next step's temporaries no longer fit, and the never-trimmed
heap grows by their size. The default STL10 run passed 16 GB with it and peaked at 7.0 GB
without it, at the same img/s (benchmarks/RESULTS.md, 2026-12-07).
"""

from __future__ import annotations

import ctypes
import importlib.util
import pkgutil
import resource
import sys

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def _glibc():
    """The running process's glibc, or None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
            return None
    except (OSError, AttributeError):
        return None
    return libc


def _accelerator_plugin_installed() -> bool:
    """Whether JAX could pick a non-CPU backend, judged without initialising any backend."""
    from importlib.metadata import entry_points

    try:
        import jax_plugins

        if any(True for _ in pkgutil.iter_modules(jax_plugins.__path__)):
            return True
    except ImportError:
        pass
    return (
        bool(list(entry_points(group="jax_plugins")))
        or importlib.util.find_spec("libtpu") is not None
    )


def backend_will_be_cpu(platforms: str | None = None) -> bool:
    """True when JAX's platform list (default: jax.config.jax_platforms, i.e. JAX_PLATFORMS) starts
    with CPU, or when none is given and no accelerator plugin is installed."""
    if platforms is None:
        import jax

        platforms = jax.config.jax_platforms or ""
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    return not _accelerator_plugin_installed()


def reuse_freed_host_memory() -> bool:
    """Keeps freed host memory in one never-trimmed malloc heap when the backend will be XLA:CPU.

    Must run before JAX initialises its backends (XLA's worker threads take their
    allocator arenas when they start); returns whether the policy was applied.
    Costs: the process keeps its peak memory until it exits.
    """
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return False
    libc = _glibc()
    if libc is None or not backend_will_be_cpu():
        return False
    # One arena: other arenas are 64 MB heaps that fall back to mmap for larger blocks.
    # No mmap and no trimming (-1 is the largest threshold: mallopt takes an int, glibc a size_t):
    # freed blocks stay mapped for the next step.
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def peak_resident_bytes() -> int:
    """This process's peak resident set so far (what `time -v` calls maximum resident size)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # Linux counts KiB
