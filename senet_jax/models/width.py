"""The width multiplier every architecture shares (MobileNet's alpha, applied to ResNets too)."""

from __future__ import annotations


def scale_width(features: int, width_multiplier: float) -> int:
    """Channels after the width multiplier, kept a multiple of 8 (and at least 8)."""
    if width_multiplier == 1.0:
        return features
    return max(8, int(features * width_multiplier + 4) // 8 * 8)
