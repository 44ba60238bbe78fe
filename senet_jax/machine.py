"""What a run ran on, for results.json and the sweep's summary.

Accuracy is not portable across machines bit for bit: on CIFAR-10 the same labels-alone run
(same seed, same commit) gave 61.99% on an AMD EPYC VM and 58.06% on an Intel Xeon VM, a
spread as wide as the seeds'. A paired difference whose two runs ran on different machines
carries that spread, so each run records its machine and the sweep says when pairs are split.
"""

from __future__ import annotations

import platform

# /proc/cpuinfo keys that name the processor: x86, then some ARM and other kernels.
_MODEL_KEYS = ("model name", "Processor", "cpu model", "cpu")


def processor_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name as the kernel reports it, else what `platform` knows."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            fields = dict(_key_value(line) for line in f if ":" in line)
    except OSError:
        fields = {}
    for key in _MODEL_KEYS:
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def _key_value(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip(), value.strip()


def describe() -> dict[str, str]:
    """results.json's `cpu` and `device_kind` (JAX's name for the accelerator, or "cpu")."""
    import jax

    return {"cpu": processor_name(), "device_kind": jax.devices()[0].device_kind}


def label(result: dict) -> str | None:
    """One name for the machine a results.json records (None for runs that predate it)."""
    cpu, kind = result.get("cpu"), result.get("device_kind")
    if not cpu:
        return None
    return cpu if kind in (None, "cpu") else f"{kind} on {cpu}"
