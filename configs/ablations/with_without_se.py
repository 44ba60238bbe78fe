r"""python -m senet_jax.sweep --config configs/ablations/with_without_se.py \
    --set model.name=mobilenet_v1,se_mobilenet_v1 --seeds 0,1,2 \
    --workdir runs/ablations/with_without_se --baseline model.name=mobilenet_v1

MobileNetV1 with and without SE in every block: the paired gain the other ablations split.
Paper (SE-ResNet-50 on ImageNet, top-1/top-5 error %, params): ResNet-50 23.30/6.55 25.6M,
SE-ResNet-50 22.28/6.03 28.1M (Tab. 10, r=16); SE in the residual branch after the 3x3
convolution only, 22.48/6.02 25.8M (Tab. 15). Tab. 14 integration variants: SE 22.28/6.03,
SE-PRE 22.23/6.00, SE-POST 22.78/6.35, SE-Identity 22.20/6.15.
"""

from __future__ import annotations

from configs import stl10


def get_config():
    return stl10.get_config()
