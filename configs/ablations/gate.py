r"""python -m senet_jax.sweep --config configs/ablations/gate.py \
    --set model.se.gate=sigmoid,tanh,relu --seeds 0,1,2 --workdir runs/ablations/gate \
    --baseline model.se.gate=sigmoid

Excitation gate, the non-linearity that turns the bottleneck output into channel weights.
Paper, Tab. 12 (SE-ResNet-50 on ImageNet, top-1/top-5 error %): ReLU 23.47/6.98,
Tanh 23.00/6.38, Sigmoid 22.28/6.03 (ReLU is worse than no SE at all, 23.30/6.55).
"""

from __future__ import annotations

from configs import stl10


def get_config():
    c = stl10.get_config()
    c.model.name = "se_mobilenet_v1"
    return c
