"""Ablations of the SENet paper's switches (Hu et al., TPAMI, Tables 10-15) on STL10.

Each module is a config whose docstring opens with the paired sweep that runs it
(`python -m senet_jax.sweep ...`, 3 seeds) and quotes the paper's ImageNet numbers
(SE-ResNet-50, top-1/top-5 error %) for reference. reduction, squeeze, gate, blocks and
with_without_se vary SE-MobileNetV1; resnet_reduction, resnet_stages and resnet_placement
vary SE-ResNet-50, including the residual-unit placements (Tab. 14) and SE on the 3x3
(Tab. 15), which MobileNetV1 does not have. attention swaps SE for its successors (ECA,
CBAM, Gather-Excite, eSE; config.model.se.kind) on both networks.
"""

from __future__ import annotations
