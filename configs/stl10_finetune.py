"""Fine-tune timm's ImageNet-trained SE-ResNet-50 (seresnet50.a1_in1k) on STL10.

    python train.py --config configs/stl10_finetune.py --workdir runs/stl10_finetune

The first run downloads the weights (a model.safetensors, no torch needed) from the Hugging
Face hub and converts them into WORKDIR/pretrained/seresnet50.a1_in1k/ (python -m
senet_jax.weights does the same by hand; `--config.init_from=DIR` takes a model directory
instead).

Expected result: not measured here (no STL10 copy, no accelerator and no hub access on these
machines), and we know of no published figure for this exact recipe, so none is quoted. What
to expect, with its reason: test accuracy far above the from-scratch configs, because STL10's
images were taken from ImageNet (Coates, Lee and Ng, AISTATS 2011, section 2: "acquired from
labeled examples on ImageNet"), so an ImageNet-pretrained network has seen these very images
(with other labels). Not comparable with the from-scratch configs for the same reason.

- config.model must describe the weights' network (config.validate checks it option by
  option): timm's `seresnet50` puts the stride on the 3x3, pads its max-pool (PyTorch style)
  and rounds SE widths up to multiples of 8 (se.min_features=8). The original Caffe
  SE-ResNet-50, timm's `legacy_seresnet50.in1k` (a .pth file: needs torch), wants
  stride_in_1x1=True, stem_pool="ceil" and se.min_features=1. The 1000-class classifier is
  replaced by a new 10-class one.
- data: 224x224 and ImageNet's mean/std, as the weights expect (model.json "preprocessing");
  pad-and-crop by an eighth of the side (28 px at 224, 12 at 96) and flips; no cutout.
- optim: SGD + Nesterov at a tenth of the from-scratch rate, 30 epochs, 1 warmup epoch,
  weight decay 1e-4 (the ImageNet value).
"""

from __future__ import annotations

import ml_collections

from configs import stl10


def get_config() -> ml_collections.ConfigDict:
    c = stl10.get_config()
    c.model.name = "se_resnet50"
    c.model.width_multiplier = 1.0
    c.model.stem_strides = 2  # the pretrained stem
    c.model.dropout_rate = 0.0
    c.model.depthwise_implementation = "auto"  # unused by ResNets
    c.model.conv_implementation = "auto"
    c.model.se.kind = "se"  # or "eca", "cbam", "ge", "ese" (configs/ablations/attention.py)
    c.model.se.reduction = 16
    c.model.se.squeeze = "avg"
    c.model.se.gate = "sigmoid"
    c.model.se.blocks = "all"
    c.model.se.min_features = 8
    c.model.se.placement = "standard"
    c.model.stride_in_1x1 = False
    c.model.padding = "torch"
    c.model.stem_pool = "pad"
    c.model.branch_relu = False

    c.init_from = "timm:seresnet50.a1_in1k"

    c.data.image_size = 224
    c.data.crop = "pad_crop"
    c.data.crop_padding = 0.125  # of the side: 28 px at 224, as 12 px at 96
    c.data.flip = True
    c.data.cutout_size = 0
    c.data.mean = (0.485, 0.456, 0.406)  # ImageNet, as the weights expect
    c.data.std = (0.229, 0.224, 0.225)

    c.optim.name = "sgd"
    c.optim.learning_rate = 0.01  # for batch_size 128
    c.optim.momentum = 0.9
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_epochs = 1
    c.optim.label_smoothing = 0.1

    c.batch_size = 128
    c.num_epochs = 30
    c.eval_every_epochs = 1
    c.checkpoint_every_steps = 200
    return c
