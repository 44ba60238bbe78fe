"""Times the project's real train and eval steps on whatever backend JAX sees.

    python benchmarks/train_step.py --model se_mobilenet_v1 --batch-size 64 \
        --image-size 96 --dtype float32 --stem-strides 2 --steps 10
    python benchmarks/train_step.py --model se_mobilenet_v1 --attention eca ...  # se.kind
    python benchmarks/train_step.py --model se_resnet50 --batch-size 16 \
        --image-size 128 --stem-strides 2 --model-option stride_in_1x1=false \
        --model-option stem_pool=pad          # timm's seresnet50 layout (torch_resnet_peer.py)
    python benchmarks/train_step.py --ssl fixmatch --unlabelled-ratio 7 --batch-size 16 ...

Prints one JSON object (compile time, median steady-state training and evaluation
images/s over --repeats timed runs of --steps steps each, after --warmup untimed
steps, peak device memory where the backend reports it), then the last line
`train_step images_per_second=N`.

With --ssl fixmatch|flexmatch it times the semi-supervised step instead
(senet_jax/semi_supervised/step.py, configs/stl10_fixmatch.py's settings: EMA of the
weights, no dropout): each step sees --batch-size labelled images plus mu = --unlabelled-ratio
times as many unlabelled ones in two views (weak and strong), B * (1 + 2 mu) images in one
forward pass. train_images_per_second counts all of them;
train_labelled_images_per_second counts the labelled ones alone. The last line is then
`ssl_train_step images_per_second=N labelled_images_per_second=M`.

It keeps freed host memory for reuse on XLA:CPU (senet_jax/host_memory.py; train.py's
`config.host_memory_reuse`, off there by default): --no-host-memory-reuse turns that off.
Images are random: this measures compute only, not the input pipeline
(benchmarks/input_pipeline.py does that).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import resource
import statistics
import sys
import time

# Runnable from the repository root as `python benchmarks/train_step.py`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import stl10, stl10_fixmatch  # noqa: E402
from senet_jax import config as config_lib  # noqa: E402
from senet_jax import models, optim, steps  # noqa: E402
from senet_jax.host_memory import reuse_freed_host_memory  # noqa: E402
from senet_jax.models.ops.conv import resolve_conv_implementation  # noqa: E402
from senet_jax.models.ops.depthwise import resolve_implementation  # noqa: E402
from senet_jax.models.se import KINDS  # noqa: E402
from senet_jax.semi_supervised import settings as ssl_settings  # noqa: E402
from senet_jax.semi_supervised import step as ssl_step  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="se_mobilenet_v1")
    p.add_argument("--batch-size", type=int, default=64, help="images per step (one device)")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="compute dtype; bfloat16 sets config.half_precision (parameters stay float32)",
    )
    p.add_argument("--steps", type=int, default=10, help="steps per timed run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
    p.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="untimed steps after compilation (3, as the PyTorch peer)",
    )
    p.add_argument("--depthwise", default="auto", help="config.model.depthwise_implementation")
    p.add_argument(
        "--conv",
        default="auto",
        help="config.model.conv_implementation (1x1 and stem convolutions)",
    )
    p.add_argument("--width", type=float, default=1.0, help="config.model.width_multiplier")
    p.add_argument(
        "--stem-strides",
        type=int,
        default=None,
        help="config.model.stem_strides (default: the config's)",
    )
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument(
        "--attention",
        default="se",
        choices=sorted(KINDS),
        help="config.model.se.kind (models with attention, e.g. se_mobilenet_v1)",
    )
    p.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an architecture option the config does not carry, VALUE as JSON "
        "(e.g. stride_in_1x1=false stem_pool='\"pad\"'); repeatable",
    )
    p.add_argument(
        "--rematerialize",
        default="none",
        help="config.rematerialize: what the backward keeps (senet_jax/remat.py)",
    )
    p.add_argument(
        "--microbatch-size",
        type=int,
        default=None,
        help="config.microbatch_size: the most images (labelled ones with --ssl) one forward "
        "and backward pass takes; a larger batch is computed in equal parts (default: whole)",
    )
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation-step timing")
    p.add_argument(
        "--no-host-memory-reuse",
        action="store_true",
        help="leave glibc's allocator as it is (train.py's default; see senet_jax/host_memory.py)",
    )
    p.add_argument(
        "--ssl",
        default="none",
        choices=ssl_settings.METHODS,
        help="time the semi-supervised step of this method (configs/stl10_fixmatch.py)",
    )
    p.add_argument(
        "--unlabelled-ratio",
        type=int,
        default=None,
        help="with --ssl: mu, unlabelled images per labelled one (default: the config's)",
    )
    a = p.parse_args(argv)
    for name in (
        "batch_size",
        "image_size",
        "steps",
        "repeats",
        "unlabelled_ratio",
        "microbatch_size",
    ):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not steps.microbatch_count(a.batch_size, a.microbatch_size):
        p.error(
            f"--batch-size {a.batch_size} does not split into equal parts of at most "
            f"--microbatch-size {a.microbatch_size}"
        )
    if a.warmup < 0:
        p.error("--warmup must be at least 0")
    if a.unlabelled_ratio is not None and a.ssl == "none":
        p.error("--unlabelled-ratio needs --ssl fixmatch or flexmatch")
    a.model_options = {}
    for item in a.model_option:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--model-option {item!r}: use KEY=VALUE")
        try:
            a.model_options[key] = json.loads(value)
        except json.JSONDecodeError:
            a.model_options[key] = value  # a bare string such as pad
    return a


def make_config(a):
    c = stl10.get_config() if a.ssl == "none" else stl10_fixmatch.get_config()
    c.ssl.method = a.ssl
    if a.unlabelled_ratio is not None:
        c.ssl.unlabelled_ratio = a.unlabelled_ratio
    c.model.name = a.model
    c.data.image_size = a.image_size
    c.batch_size = a.batch_size
    c.half_precision = a.dtype == "bfloat16"
    c.model.depthwise_implementation = a.depthwise
    c.model.conv_implementation = a.conv
    c.model.width_multiplier = a.width
    c.model.se.kind = a.attention
    if a.stem_strides is not None:
        c.model.stem_strides = a.stem_strides
    c.rematerialize = a.rematerialize
    c.microbatch_size = a.microbatch_size
    return c


def _median_rate(fn, repeats, images):
    """Calls fn() `repeats` times (it must block); returns (median images/s, all rates)."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(images / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def cpu_model() -> str:
    """The processor's model name where the OS says it (Linux), else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_bytes():
    stats = jax.devices()[0].memory_stats()
    if not stats:
        return None
    return stats.get("peak_bytes_in_use", stats.get("bytes_in_use"))


# What the benchmark's FlexMatch record covers: STL10's unlabelled split.
NUM_UNLABELLED = 100_000


def images_per_labelled(config) -> int:
    """Images in one step per labelled image: 1, or 1 + 2 mu (a weak and a strong view of mu
    unlabelled images) for a semi-supervised step."""
    if config.ssl.method == "none":
        return 1
    return 1 + 2 * config.ssl.unlabelled_ratio


def _parts(config) -> int:
    """Parts a step's batch is computed in (one device: the whole batch is its share)."""
    return steps.microbatch_count(config.batch_size, config.microbatch_size)


def _supervised_step(config, state, labelled):
    step = jax.jit(
        functools.partial(
            steps.train_step,
            label_smoothing=config.optim.label_smoothing,
            rematerialize=config.rematerialize,
            microbatches=_parts(config),
        ),
        donate_argnums=0,
    )
    return step, state, labelled


def _ssl_step(config, state, labelled, rng):
    """The semi-supervised step as the trainer calls it (one device, no axis), its state and a
    batch of mu * B random unlabelled images in each view, with random distinct indices and
    unknown labels (-1, as STL10's unlabelled split)."""
    state = ssl_step.create_state(
        state,
        method=config.ssl.method,
        ema_decay=float(config.ssl.ema_decay),
        num_unlabelled=NUM_UNLABELLED,
    )
    # The average starts as the parameters themselves; the step donates its state, and one
    # buffer cannot be donated twice (the trainer's replication to devices copies them).
    state = state.replace(ema_params=jax.tree.map(jnp.copy, state.ema_params))
    n = labelled["image"].shape[0] * config.ssl.unlabelled_ratio
    shape = (n, *labelled["image"].shape[1:])
    unlabelled = {
        "weak": jnp.asarray(rng.randn(*shape).astype(np.float32)),
        "strong": jnp.asarray(rng.randn(*shape).astype(np.float32)),
        "index": jnp.asarray(rng.choice(NUM_UNLABELLED, n, replace=False).astype(np.int32)),
        "label": jnp.full((n,), -1, jnp.int32),
    }
    options = ssl_settings.step_options(config)
    options["microbatches"] = _parts(config)

    def train_step(s, batch):
        return ssl_step.ssl_train_step(s, batch["labelled"], batch["unlabelled"], **options)

    step = jax.jit(train_step, donate_argnums=0)
    return step, state, {"labelled": labelled, "unlabelled": unlabelled}


def _ssl_fields(config, batch_size, train_ips, images_per_step):
    return {
        "ssl_ema_decay": float(config.ssl.ema_decay),
        "labelled_batch_size": batch_size,
        "unlabelled_ratio": config.ssl.unlabelled_ratio,
        "images_per_step": images_per_step,
        "train_labelled_images_per_second": round(train_ips / images_per_labelled(config), 1),
    }


def run(a):
    # On XLA:CPU, reuse freed host memory across steps (senet_jax/host_memory.py): a loop of
    # steps alone does not fragment the heap the way a whole training run does.
    host_memory_reused = False if a.no_host_memory_reuse else reuse_freed_host_memory()
    config = make_config(a)
    model = steps.create_model(config, a.num_classes)
    if a.model_options:
        model = model.clone(**a.model_options)
    image_shape = (a.image_size, a.image_size, 3)
    tx, _ = optim.create_optimizer(config.optim, num_epochs=config.num_epochs, steps_per_epoch=100)
    state = steps.create_train_state(model, tx, jax.random.PRNGKey(0), image_shape)
    rng = np.random.RandomState(0)
    labelled = {
        "image": jnp.asarray(rng.randn(a.batch_size, *image_shape).astype(np.float32)),
        "label": jnp.asarray(rng.randint(0, a.num_classes, a.batch_size).astype(np.int32)),
    }
    if a.ssl == "none":
        step, state, batch = _supervised_step(config, state, labelled)
    else:
        step, state, batch = _ssl_step(config, state, labelled, rng)
    images_per_step = a.batch_size * images_per_labelled(config)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    temp_bytes = getattr(compiled.memory_analysis(), "temp_size_in_bytes", None)
    holder = {"state": state}

    def train_steps(n):
        s = holder["state"]
        for _ in range(n):
            s, metrics = compiled(s, batch)
        jax.block_until_ready((s, metrics))
        holder["state"] = s
        return metrics

    metrics = train_steps(max(a.warmup, 1))
    train_ips, train_rates = _median_rate(
        lambda: train_steps(a.steps), a.repeats, a.steps * images_per_step
    )
    result = {
        "model": a.model,
        "attention": a.attention if models.has_attention(a.model) else None,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "batch_size": a.batch_size,
        "image_size": a.image_size,
        "dtype": a.dtype,
        "depthwise": resolve_implementation(a.depthwise),
        "conv": resolve_conv_implementation(a.conv),
        "width_multiplier": a.width,
        "stem_strides": config.model.stem_strides,
        "num_classes": a.num_classes,
        "model_options": a.model_options,
        "steps": a.steps,
        "repeats": a.repeats,
        "warmup": a.warmup,
        "compile_seconds": round(compile_s, 2),
        "train_images_per_second": round(train_ips, 1),
        "train_images_per_second_runs": [round(r, 1) for r in train_rates],
        "final_loss": float(metrics["loss"]),
        "host_memory_reused": host_memory_reused,
        "rematerialize": config.rematerialize,
        "microbatch_size": config.microbatch_size,
        "microbatches": _parts(config),
        "train_step_temp_bytes": temp_bytes,
        "ssl": a.ssl,
    }
    if a.ssl != "none":
        result.update(_ssl_fields(config, a.batch_size, train_ips, images_per_step))
    if not a.no_eval:
        eval_batch = {**labelled, "mask": jnp.ones((a.batch_size,), bool)}
        eval_state = holder["state"]
        eval_fn = jax.jit(steps.eval_step)
        t0 = time.perf_counter()
        eval_compiled = eval_fn.lower(eval_state, eval_batch).compile()
        result["eval_compile_seconds"] = round(time.perf_counter() - t0, 2)

        def eval_steps(n):
            for _ in range(n):
                out = eval_compiled(eval_state, eval_batch)
            jax.block_until_ready(out)

        eval_steps(max(a.warmup, 1))
        eval_ips, _ = _median_rate(lambda: eval_steps(a.steps), a.repeats, a.steps * a.batch_size)
        result["eval_images_per_second"] = round(eval_ips, 1)
    result["peak_device_memory_bytes"] = peak_memory_bytes()
    # Linux reports kilobytes, macOS bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    result["peak_host_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["host_cpu"] = cpu_model()
    result["host_cores"] = os.cpu_count()
    result["jax"] = jax.__version__
    return result


def main(argv=None):
    a = parse_args(argv)
    try:  # bad choices fail here in one line, as in train.py, before any compile work
        config_lib.validate(make_config(a), device_count=1)
    except config_lib.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    result = run(a)
    print(json.dumps(result, indent=1))
    if a.ssl == "none":
        print(f"train_step images_per_second={result['train_images_per_second']}")
    else:
        print(
            f"ssl_train_step images_per_second={result['train_images_per_second']} "
            f"labelled_images_per_second={result['train_labelled_images_per_second']}"
        )


if __name__ == "__main__":
    main()
