r"""python -m senet_jax.sweep --config configs/ablations/resnet_stages.py \
    --set 'model.se.blocks=(),(conv3_x),(conv4_x),(conv5_x),all' --seeds 0,1,2 \
    --workdir runs/ablations/resnet_stages --baseline 'model.se.blocks=()'

SE in one stage of SE-ResNet-50 at a time, against SE nowhere (`()`, a plain ResNet-50
with the same code) and everywhere. Stages are named as in the ResNet paper (conv2_x is
the first, 56x56 at 224). Paper, Tab. 13 (ImageNet, top-1/top-5 error %): ResNet-50
23.30/6.55, SE_Stage_2 23.03/6.48, SE_Stage_3 23.04/6.32, SE_Stage_4 22.68/6.22,
SE_All 22.28/6.03: each stage helps alone and the gains add up. (The paper's stages 2-4
are conv3_x-conv5_x here; its numbering starts after the stem.)
"""

from __future__ import annotations

from configs import stl10_se_resnet


def get_config():
    c = stl10_se_resnet.get_config()
    c.model.name = "se_resnet50"
    return c
