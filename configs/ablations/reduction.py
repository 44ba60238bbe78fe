r"""python -m senet_jax.sweep --config configs/ablations/reduction.py \
    --set model.se.reduction=2,4,8,16,32 --seeds 0,1,2 --workdir runs/ablations/reduction \
    --baseline model.se.reduction=16

Reduction ratio r of the SE bottleneck (C -> C/r -> C), against the paper's default 16.
Paper, Tab. 10 (SE-ResNet-50 on ImageNet, top-1/top-5 error %, params):
r=2 22.29/6.00 45.7M; r=4 22.25/6.09 35.7M; r=8 22.26/5.99 30.7M; r=16 22.28/6.03 28.1M;
r=32 22.72/6.20 26.9M; ResNet-50 without SE 23.30/6.55 25.6M. Accuracy is flat in r up
to 16, so r trades parameters for little; the question here is whether that holds on
STL10's 5,000 images, where the extra parameters of small r may overfit.
"""

from __future__ import annotations

from configs import stl10


def get_config():
    c = stl10.get_config()
    c.model.name = "se_mobilenet_v1"
    return c
