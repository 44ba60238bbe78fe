"""Export a trained run for serving:
python -m senet_jax.export --workdir W --format saved_model|tflite|stablehlo --out DIR

Every artifact takes uint8 RGB images and returns (probabilities, logits); normalisation is
inside, so callers send raw pixels. What each holds (also written to DIR/<format>.json):

- saved_model (DIR/saved_model/): a jax2tf SavedModel. Signature "serving_default": images
  uint8 [batch, height, width, 3], any batch and size; images not already S x S are resized
  as evaluation does (antialiased bilinear, rounded to uint8). Signature "fixed_size": uint8
  [batch, S, S, 3]. Both return {"probabilities", "logits"}, float32 [batch, classes].
- tflite (DIR/model.tflite): converted from that SavedModel's "fixed_size" signature (TFLite
  has no antialiased resize): uint8 [batch, S, S, 3], batch resizable.
- stablehlo (DIR/model.stablehlo): `jax.export` serialized, weights inside, batch symbolic:
  `probabilities, logits = jax.export.deserialize(data).call(images)` with images uint8
  [batch, S, S, 3] (resize beforehand as above), lowered for cpu, cuda and tpu.

Kernels: `--kernels reference` (default) exports the formulations the JAX model runs on CPU
(shift-and-add depthwise, 1x1 and stem convolutions as matmuls); `--kernels native` exports
XLA's grouped and native convolutions (what "auto" runs on GPU/TPU; TFLite maps them to its
own convolution ops, faster there). Both lower cleanly under jax2tf and jax.export and give
the same parameters; "reference" agrees more closely with the JAX model on CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from typing import Any

from senet_jax import cli

FORMATS = ("saved_model", "tflite", "stablehlo")
KERNELS = {
    "reference": {"depthwise_implementation": "shift_add", "conv_implementation": "matmul"},
    "native": {"depthwise_implementation": "grouped", "conv_implementation": "native"},
}
PLATFORMS = ("cpu", "cuda", "tpu")
ARTIFACTS = {"saved_model": "saved_model", "tflite": "model.tflite", "stablehlo": "model.stablehlo"}


class ExportError(ValueError):
    """The export cannot be written where asked."""


def check_out(out: str) -> None:
    """--out must be (or become) a folder that takes new files: checked before any work."""
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".senet_jax_probe_{uuid.uuid4().hex}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise ExportError(
            f"--out {out}: cannot write there ({e.strerror or e}); choose a writable folder"
        ) from None


def serving_function(trained):
    """(variables, uint8 images [b, S, S, 3]) -> (probabilities, logits), normalisation inside."""
    import jax
    import jax.numpy as jnp

    from senet_jax.data import augment

    mean, scale = augment.normalisation(trained.config.data.mean, trained.config.data.std)

    def serve(variables, images):
        x = (images.astype(jnp.float32) - mean) * scale
        logits = trained.module.apply(variables, x, train=False).astype(jnp.float32)
        return jax.nn.softmax(logits, axis=-1), logits

    return serve


def write_saved_model(trained, path: str) -> None:
    """A jax2tf SavedModel with the "serving_default" (any size) and "fixed_size" signatures."""
    from jax.experimental import jax2tf

    from senet_jax.data import augment
    from senet_jax.data.tf_setup import load_tf

    tf, size = load_tf(), trained.image_size
    converted = jax2tf.convert(
        serving_function(trained),
        polymorphic_shapes=[None, f"(b, {size}, {size}, 3)"],
        with_gradient=False,
        native_serialization_platforms=PLATFORMS,
    )
    module = tf.Module()
    module.variables_ = tf.nest.map_structure(
        lambda a: tf.Variable(a, trainable=False), trained.variables
    )

    @tf.function(
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")],
        autograph=False,
    )
    def fixed_size(images):
        probabilities, logits = converted(module.variables_, images)
        return {"probabilities": probabilities, "logits": logits}

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
        autograph=False,
    )
    def serving_default(images):
        shape = tf.shape(images)
        resized = tf.cond(
            tf.logical_and(tf.equal(shape[1], size), tf.equal(shape[2], size)),
            lambda: images,
            lambda: augment.resize_uint8(tf, images, size),
        )
        return fixed_size(tf.ensure_shape(resized, [None, size, size, 3]))

    module.fixed_size, module.serving_default = fixed_size, serving_default
    signatures = {"serving_default": serving_default, "fixed_size": fixed_size}
    tf.saved_model.save(module, path, signatures=signatures)


def write_tflite(trained, path: str, scratch: str) -> None:
    """TFLite converted from the SavedModel's "fixed_size" signature."""
    from senet_jax.data.tf_setup import load_tf

    saved_model = os.path.join(scratch, "saved_model_for_tflite")
    write_saved_model(trained, saved_model)
    tf = load_tf()
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=["fixed_size"])
    with open(path, "wb") as f:
        f.write(converter.convert())


def write_stablehlo(trained, path: str) -> None:
    """jax.export of the serving function with the weights inside and a symbolic batch."""
    import jax
    import jax.numpy as jnp

    serve, variables, size = serving_function(trained), trained.variables, trained.image_size
    (batch,) = jax.export.symbolic_shape("batch")
    exported = jax.export.export(
        jax.jit(lambda images: serve(variables, images)), platforms=PLATFORMS
    )(jax.ShapeDtypeStruct((batch, size, size, 3), jnp.uint8))
    with open(path, "wb") as f:
        f.write(exported.serialize())


def describe(trained, fmt: str, kernels: str, workdir: str) -> dict[str, Any]:
    """The calling convention, written next to the artifact as <format>.json."""
    size = trained.image_size
    fixed = f"uint8 [batch, {size}, {size}, 3] RGB pixels 0-255"
    inputs = {
        "saved_model": {"serving_default": "uint8 [batch, height, width, 3]", "fixed_size": fixed},
        "tflite": {"fixed_size": fixed},
        "stablehlo": {"call(images)": fixed},
    }[fmt]
    return {
        "format": fmt,
        "artifact": ARTIFACTS[fmt],
        "inputs": inputs,
        "outputs": "probabilities, logits: float32 [batch, classes]",
        "preprocessing": "inside: (x / 255 - mean) / std"
        + ("; resize to S x S in serving_default" if fmt == "saved_model" else ""),
        "image_size": size,
        "mean": list(trained.config.data.mean),
        "std": list(trained.config.data.std),
        "class_names": list(trained.class_names),
        "kernels": {"name": kernels, **KERNELS[kernels]},
        "platforms": list(PLATFORMS) if fmt != "tflite" else ["tflite"],
        "workdir": workdir if workdir.startswith("timm:") else os.path.abspath(workdir),
        "checkpoint_step": trained.step,
        "model": trained.config.model.name,
    }


def export(trained, fmt: str, out: str, *, kernels: str = "reference", workdir: str = "") -> str:
    """Writes the artifact and its <format>.json into `out`, each replaced atomically."""
    model = trained.with_model_options(**KERNELS[kernels])
    scratch = tempfile.mkdtemp(prefix=".export-", dir=out)
    try:
        staged = os.path.join(scratch, ARTIFACTS[fmt])
        if fmt == "saved_model":
            write_saved_model(model, staged)
        elif fmt == "tflite":
            write_tflite(model, staged, scratch)
        else:
            write_stablehlo(model, staged)
        final = os.path.join(out, ARTIFACTS[fmt])
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(staged, final)
        meta = os.path.join(scratch, f"{fmt}.json")
        with open(meta, "w") as f:
            json.dump(describe(model, fmt, kernels, workdir), f, indent=2)
        os.replace(meta, os.path.join(out, f"{fmt}.json"))
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = cli.run_parser(
        "Export a trained run or pretrained weights as a SavedModel, TFLite or StableHLO file.",
        pretrained=True,
    )
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, help="folder for the artifact")
    parser.add_argument("--kernels", default="reference", choices=sorted(KERNELS))
    args = parser.parse_args(argv)

    def body() -> int:
        from senet_jax import inference

        check_out(args.out)
        source = args.model or args.workdir
        trained = inference.load(source, args.checkpoint)
        path = export(trained, args.format, args.out, kernels=args.kernels, workdir=source)
        print(f"wrote {path} (checkpoint {trained.step}; calling convention in {args.format}.json)")
        return 0

    return cli.main_with_errors(body, (ExportError,))


if __name__ == "__main__":
    cli.set_up_logging()
    sys.exit(main())
