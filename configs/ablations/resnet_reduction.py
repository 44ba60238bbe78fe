r"""python -m senet_jax.sweep --config configs/ablations/resnet_reduction.py \
    --set model.se.reduction=4,8,16,32 --seeds 0,1,2 \
    --workdir runs/ablations/resnet_reduction --baseline model.se.reduction=16

Reduction ratio r of SE-ResNet-50's SE bottlenecks, the network of the paper's Tab. 10.
Paper (ImageNet, top-1/top-5 error %, params): r=4 22.25/6.09 35.7M, r=8 22.26/5.99
30.7M, r=16 22.28/6.03 28.1M, r=32 22.72/6.20 26.9M; ResNet-50 23.30/6.55 25.6M.
The parameter counts are exact here (tests/models/test_resnet.py checks 35,635,688 /
30,603,912 / 28,088,024 / 26,830,080 at 1000 classes).
"""

from __future__ import annotations

from configs import stl10_se_resnet


def get_config():
    c = stl10_se_resnet.get_config()
    c.model.name = "se_resnet50"
    return c
