"""SE-MobileNetV1 ablations of the SENet paper's switches (Hu et al., TPAMI, Tables 10-15).

Each module is a config whose docstring opens with the paired sweep that runs it
(`python -m senet_jax.sweep ...`, 3 seeds) and quotes the paper's ImageNet numbers
(SE-ResNet-50, top-1/top-5 error %) for reference. The paper's integration (Tab. 14) and
SE-on-3x3 (Tab. 15) variants concern residual units, which MobileNetV1 does not have.
"""

from __future__ import annotations
