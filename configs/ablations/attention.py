r"""python -m senet_jax.sweep --config configs/ablations/attention.py \
    --set model.se.kind=se,eca,cbam,ge,ese --seeds 0,1,2 \
    --workdir runs/ablations/attention --baseline model.se.kind=se

The same sweep on SE-ResNet-50 (stl10_se_resnet's recipe):
    python -m senet_jax.sweep --config configs/ablations/attention.py:resnet50 \
        --set model.se.kind=se,eca,cbam,ge,ese --seeds 0,1,2 \
        --workdir runs/ablations/attention_resnet50 --baseline model.se.kind=se
No attention at all is configs/ablations/with_without_se.py (or --set model.name=... with
mobilenet_v1 / resnet50 beside the se_ names).

SE and its successors in the same slot (after every depthwise-separable block of
SE-MobileNetV1; on the residual branch of every ResNet-50 unit), each with its paper's
defaults: SE r=16; ECA's adaptive 1D kernel; CBAM r=16 with its 7x7 spatial step; GE-theta-
minus with global extent (parameter-free; --set model.se.gather=pool,conv with kind=ge
compares GE-theta); eSE's single C -> C layer. Parameters at 224x224, 1000 classes
(tests/models/test_resnet.py): se_resnet50 28,088,024 (SE), 25,557,118 (ECA),
28,073,576 (CBAM), 25,557,032 (GE-theta-minus), 45,691,688 (eSE).

Published ImageNet figures (theirs, ResNet-50, single 224 crop; training setups differ
between papers, so compare each with its own baseline, not across papers):
- SE (Hu et al., TPAMI): Table 2, ResNet-50 (re-implemented) 24.80/7.48 top-1/top-5 error,
  SE-ResNet-50 23.29/6.62; the ablation tables' setting, ResNet-50 23.30/6.55 vs SE 22.28/6.03.
- ECA (Wang et al., CVPR 2020): ECA-Net50 top-1 accuracy 77.48 (ResNet-50 75.20 in theirs).
- CBAM (Woo et al., ECCV 2018): ResNet-50 24.56/7.50 top-1/top-5 error, + CBAM 22.66/6.31.
- Gather-Excite (Hu et al., NeurIPS 2018): as quoted in issue 23, GE-theta ResNet-50 top-1
  error 21.88, GE-theta-minus (global extent) 22.14; not re-checked against the paper here.
- eSE (Lee & Park, CenterMask, CVPR 2020): introduced in VoVNetV2 and reported on COCO
  detection/segmentation; we know of no ResNet-50 ImageNet figure from its authors.
"""

from __future__ import annotations

from configs import stl10, stl10_se_resnet


def get_config(network: str = "mobilenet_v1"):
    """SE-MobileNetV1 on STL10 (configs/stl10.py), or "resnet50": SE-ResNet-50 with
    configs/stl10_se_resnet.py's recipe."""
    if network == "resnet50":
        c = stl10_se_resnet.get_config()
        c.model.name = "se_resnet50"
    elif network == "mobilenet_v1":
        c = stl10.get_config()
        c.model.name = "se_mobilenet_v1"
    else:
        raise ValueError(f"network {network!r}: use mobilenet_v1 or resnet50")
    c.model.se.kind = "se"
    return c
