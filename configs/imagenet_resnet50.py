"""ResNet-50 on ImageNet: the baseline of configs/imagenet_se_resnet50.py, same recipe.

    python train.py --config configs/imagenet_resnet50.py --workdir gs://BUCKET/runs/r50 \
        --config.data.data_dir=gs://BUCKET/tfds

Paper figure (SENet, Tab. 2, single crop): 24.80% top-1 / 7.48% top-5 error for ResNet-50
(re-implemented), against 23.29% / 6.62% with SE blocks. Not reproduced here.
"""

from __future__ import annotations

from configs import imagenet_se_resnet50


def get_config():
    c = imagenet_se_resnet50.get_config()
    c.model.name = "resnet50"
    return c
