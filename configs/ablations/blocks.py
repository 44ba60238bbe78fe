r"""python -m senet_jax.sweep --config configs/ablations/blocks.py \
--set 'model.se.blocks=(),(1,2,3),(4,5),(6,7,8,9,10,11),(12,13),(1,2,3,4,5,6,7,8,9,10,11,12,13)' \
    --seeds 0,1,2 --workdir runs/ablations/blocks --baseline 'model.se.blocks=()'

SE in one group of MobileNetV1 blocks at a time, against SE nowhere (`()`) and everywhere.
The groups follow the network's resolutions and widths (block numbers are 1-based, as the
block01..block13 names; sizes for a 96x96 image with stem_strides=1):
(1,2,3) 64-128 channels at 96x96 and 48x48; (4,5) 256 channels at 24x24;
(6..11) 512 channels at 12x12; (12,13) 1024 channels at 6x6.
Paper, Tab. 13 (SE-ResNet-50 on ImageNet, top-1/top-5 error %): ResNet-50 23.30/6.55,
SE_Stage_2 23.03/6.48, SE_Stage_3 23.04/6.32, SE_Stage_4 22.68/6.22, SE_All 22.28/6.03:
each stage helps on its own and the gains add up.

`blocks` is a tuple here (all 13 by default), not the string "all", so that command-line
overrides parse as tuples.
"""

from __future__ import annotations

from configs import stl10


def get_config():
    c = stl10.get_config()
    c.model.name = "se_mobilenet_v1"
    with c.model.se.ignore_type():  # the base config may hold the string "all"
        c.model.se.blocks = tuple(range(1, 14))
    return c
