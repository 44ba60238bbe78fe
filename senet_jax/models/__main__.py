"""Model summary: python -m senet_jax.models se_mobilenet_v1 --image-size 224 --num-classes 1000"""

from __future__ import annotations

import argparse

from senet_jax.models import create_model, list_models
from senet_jax.models.summary import format_table, summarize


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m senet_jax.models",
        description="Per-block output shape, parameters and multiply-adds of a model, for one "
        "image. "
        "Multiply-adds count every weight use of the convolutions (depthwise included) and "
        "Dense layers, plus the SE scale's one multiply per activation; BatchNorm, activations, "
        "gates and pooling are not counted, as in the MobileNet and SENet papers.",
    )
    parser.add_argument("model", choices=list_models())
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier")
    parser.add_argument("--stem-strides", type=int, default=2)
    args = parser.parse_args(argv)
    model = create_model(
        args.model,
        num_classes=args.num_classes,
        width_multiplier=args.width,
        stem_strides=args.stem_strides,
    )
    size = f"{args.image_size}x{args.image_size}"
    print(f"{args.model}: {size}, {args.num_classes} classes, width {args.width}")
    print(format_table(summarize(model, args.image_size)))


if __name__ == "__main__":
    main()
