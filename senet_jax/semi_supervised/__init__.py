"""Semi-supervised training (FixMatch, FlexMatch): pure pieces the trainer composes.

`pseudo_labels` (the masked loss on the unlabelled images), `flexmatch` (per-class thresholds
from each class's learning status), `ema` (the averaged weights evaluation uses), `step` (one
training step over a labelled and an unlabelled batch) and `settings` (the config fields and
their validation). None of them imports the trainer, the data pipeline or `config`.
"""

from __future__ import annotations
