"""Runs one of our attention modules and its timm twin on the same input and weights."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax import weights
from senet_jax.models.ops.norm import batch_norm_factory

weights.allow_torch_beside_tensorflow()  # whichever test module loaded TensorFlow first
torch = pytest.importorskip("torch")
pytest.importorskip("timm")
from timm.layers import cbam, eca, gather_excite, squeeze_excite  # noqa: E402

# timm's modules, by the names timm gives them.
timm_layers = SimpleNamespace(
    CbamModule=cbam.CbamModule,
    EcaModule=eca.EcaModule,
    GatherExcite=gather_excite.GatherExcite,
    EffectiveSEModule=squeeze_excite.EffectiveSEModule,
)

# Inference-mode BatchNorm as the architectures bind it.
EVAL_NORM = batch_norm_factory(
    train=False,
    momentum=0.9,
    epsilon=1e-5,
    axis_name=None,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
)


def randomised(module, seed=0):
    """`module` in eval mode with random weights and BatchNorm statistics (so BN matters)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return module.eval()


def inputs(channels, size, seed=0):
    return np.random.RandomState(seed).randn(2, size, size, channels).astype(np.float32)


def dense(weight) -> np.ndarray:
    """A 1x1 conv weight [out, in, 1, 1] as a Dense kernel [in, out]."""
    return weight.detach().numpy()[:, :, 0, 0].T


def conv(weight) -> np.ndarray:
    """A conv weight [out, in, kh, kw] as a flax kernel [kh, kw, in, out]."""
    return weight.detach().numpy().transpose(2, 3, 1, 0)


def batch_norm(bn) -> tuple[dict, dict]:
    """(params, batch_stats) of a BatchNorm2d."""
    as_np = lambda t: t.detach().numpy()
    params = {"scale": as_np(bn.weight), "bias": as_np(bn.bias)}
    stats = {"mean": as_np(bn.running_mean), "var": as_np(bn.running_var)}
    return params, stats


def variable_shapes(module, x) -> dict:
    """Shapes of the parameters and BatchNorm statistics `module` creates for `x`."""
    variables = module.init(jax.random.key(0), jnp.asarray(x))
    return {
        k: jax.tree.map(lambda a: a.shape, v) for k, v in variables.items() if k != "excitations"
    }


def assert_same_output(ours, variables, theirs, x_nhwc, atol=1e-5):
    """Our module on NHWC and timm's on NCHW give the same map within `atol`."""
    out = np.asarray(ours.apply(variables, jnp.asarray(x_nhwc)))
    with torch.no_grad():
        ref = theirs(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(out, ref.transpose(0, 2, 3, 1), atol=atol, rtol=0)
