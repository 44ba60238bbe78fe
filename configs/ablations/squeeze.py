r"""python -m senet_jax.sweep --config configs/ablations/squeeze.py \
    --set model.se.squeeze=avg,max --seeds 0,1,2 --workdir runs/ablations/squeeze \
    --baseline model.se.squeeze=avg

Squeeze operator: global average pooling (the paper's choice) or global max pooling.
Paper, Tab. 11 (SE-ResNet-50 on ImageNet, top-1/top-5 error %): max 22.57/6.09,
avg 22.28/6.03.
"""

from __future__ import annotations

from configs import stl10


def get_config():
    c = stl10.get_config()
    c.model.name = "se_mobilenet_v1"
    return c
