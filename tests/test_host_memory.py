"""senet_jax.host_memory: freed host memory is reused across XLA:CPU executions."""

from __future__ import annotations

import os
import subprocess
import sys

from senet_jax import host_memory

# A jitted function with a 64 MB temporary; prints whether the policy applied and the
# fewest minor page faults per call over three windows once warm (the heap takes a few
# calls to reach its size, and another thread's allocation can land in one window).
_PROBE = """
import resource
import jax, jax.numpy as jnp
import sys
from senet_jax.host_memory import reuse_freed_host_memory
applied = reuse_freed_host_memory() if sys.argv[1] == "apply" else False
f = jax.jit(lambda x, w, v: jnp.dot(jnp.dot(x, w), v))
x, w, v = jnp.ones((16384, 64)), jnp.ones((64, 1024)), jnp.ones((1024, 8))
for _ in range(12):
    jax.block_until_ready(f(x, w, v))
windows = []
for _ in range(3):
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        jax.block_until_ready(f(x, w, v))
    windows.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) // 4)
print(applied, min(windows))
"""


def _probe(apply: bool):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full_env = {**os.environ, "PYTHONPATH": root, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "apply" if apply else "leave"],
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    )
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


def test_temporaries_stop_faulting_when_policy_applies():
    applied, faults = _probe(apply=True)
    opted_out, faults_default = _probe(apply=False)
    assert applied and not opted_out
    assert faults_default > 10000  # 64 MB of fresh 4 KiB pages per call
    assert faults < faults_default / 20


def test_not_applied_after_backend_started_or_for_accelerators():
    import jax

    jax.devices()  # the test session's backend is running: too late to change the allocator
    assert not host_memory.reuse_freed_host_memory()
    assert not host_memory.backend_will_be_cpu("cuda,cpu")
    assert not host_memory.backend_will_be_cpu("tpu")
    assert host_memory.backend_will_be_cpu("cpu")
