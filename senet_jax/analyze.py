"""SE excitation analysis (the paper's Sec. 7.2, Figs. 7-8), for every channel-attention kind:
python -m senet_jax.analyze --workdir W [--split test] [--classes NAMES|all] [--replace-blocks LIST]

One pass over the split reads every attention block's gates from the "excitations"
collection the blocks sow (the model itself, no second copy; gates that vary over space,
as Gather-Excite's with a local extent, as their spatial mean) and averages them per class
and over all examples. Then the paper's last-stage test: accuracy when the gates of the
chosen blocks are replaced by their class-agnostic mean, done with an interceptor on the
`excite` method every kind has (senet_jax.models.attention.base.ChannelAttention).
Written to W/analysis/<split>-<step>/: excitations.npz, excitations.png, analysis.json.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from senet_jax import cli

Replace = Callable[[str, Any], Any]  # (block name, gates [N, C]) -> gates [N, C]


class AnalysisError(ValueError):
    """The run cannot be analysed as asked (no SE blocks, unknown class or block)."""


def block_name(path: tuple[str, ...]) -> str:
    """ "block13" for the attention module at ("block13", "se") or ("block13", "eca");
    nested paths joined with "/"."""
    from senet_jax.models.se import KINDS

    return "/".join(path[:-1] if path and path[-1] in KINDS else path)


def excitations_by_block(collection) -> dict[str, Any]:
    """{block name: gates [N, C]} from the sown "excitations" collection."""
    from flax import traverse_util

    flat = traverse_util.flatten_dict(collection)
    return {block_name(key[:-1]): value[-1] for key, value in flat.items()}


def replacing_gates(replace: Replace):
    """Context manager: every attention block's gates pass through `replace(name, gates)`
    (a [C] mean broadcasts over gates that vary over space)."""
    import flax.linen as nn

    from senet_jax.models.attention.base import ChannelAttention

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, ChannelAttention) and context.method_name == "excite":
            return replace(block_name(context.module.path), out)
        return out

    return nn.intercept_methods(interceptor)


def _step_fn(trained, replace: Replace | None):
    """jit (variables, x) -> (logits, {block: gates})."""
    import contextlib

    import jax

    def run(variables, x):
        scope = replacing_gates(replace) if replace else contextlib.nullcontext()
        with scope:
            logits, state = trained.module.apply(variables, x, train=False, mutable=["excitations"])
        return logits, excitations_by_block(state.get("excitations", {}))

    return jax.jit(run)


def run_pass(trained, split: str, batch_size: int, replace: Replace | None = None) -> dict:
    """Accuracy over the split, and per-class sums of every block's gates (masked)."""
    from senet_jax import inference

    step = _step_fn(trained, replace)
    k = len(trained.class_names)
    correct, counts, sums = 0, np.zeros(k), {}
    for batch in inference.split_batches(trained.config, split, batch_size):
        logits, gates = step(trained.variables, batch["image"])
        mask = batch["mask"].astype(np.float64)
        labels = np.eye(k)[batch["label"]] * mask[:, None]  # [n, K] one-hot, padding zeroed
        correct += float(np.sum((np.argmax(logits, -1) == batch["label"]) * mask))
        counts += labels.sum(0)
        for name, g in gates.items():
            sums[name] = sums.get(name, 0.0) + labels.T @ np.asarray(g, np.float64)
    return {"accuracy": correct / counts.sum(), "counts": counts, "sums": sums}


def check_has_se(trained) -> list[str]:
    """The SE block names, from one abstract forward pass; AnalysisError when there are none."""
    import jax

    size = trained.image_size
    x = jax.ShapeDtypeStruct((1, size, size, 3), np.float32)
    _, gates = jax.eval_shape(_step_fn(trained, None), trained.variables, x)
    if not gates:
        raise AnalysisError(
            f"{trained.config.model.name} has no SE blocks (config.model.se.blocks="
            f"{trained.config.model.se.blocks!r}): nothing to analyse"
        )
    return list(gates)


def default_blocks(channels: dict[str, int]) -> list[str]:
    """The last stage: the trailing SE blocks as wide as the last one (the paper's SE_5_x)."""
    names = list(channels)
    last = channels[names[-1]]
    chosen = []
    for name in reversed(names):
        if channels[name] != last:
            break
        chosen.insert(0, name)
    return chosen


def _parse_list(text: str, known: list[str], what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in items if t not in known]
    if unknown or not items:
        raise AnalysisError(
            f"{what} {', '.join(unknown) or repr(text)} unknown; choose from {', '.join(known)}"
        )
    return items


def analyze(trained, split: str, batch_size: int, blocks: list[str] | None) -> dict[str, Any]:
    """Per-class and overall mean gates, accuracy, and accuracy with `blocks`' gates replaced
    by their class-agnostic mean (default: the last stage)."""
    import jax.numpy as jnp

    check_has_se(trained)
    first = run_pass(trained, split, batch_size)
    total = first["counts"].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = {n: s / first["counts"][:, None] for n, s in first["sums"].items()}
    overall = {n: s.sum(0) / total for n, s in first["sums"].items()}
    blocks = blocks or default_blocks({n: v.shape[0] for n, v in overall.items()})
    means = {n: jnp.asarray(overall[n], jnp.float32) for n in blocks}

    def to_mean(name, gates):
        return (
            jnp.broadcast_to(means[name], gates.shape).astype(gates.dtype)
            if name in means
            else gates
        )

    replaced = run_pass(trained, split, batch_size, replace=to_mean)
    return {
        "per_class": per_class,
        "overall": overall,
        "counts": first["counts"],
        "accuracy": first["accuracy"],
        "replaced_blocks": blocks,
        "accuracy_with_mean_gates": replaced["accuracy"],
    }


def write(result: dict[str, Any], trained, split: str, classes: list[str], folder: str) -> None:
    from senet_jax import reporting

    os.makedirs(folder, exist_ok=True)
    arrays = {name: m.astype(np.float32) for name, m in result["per_class"].items()}
    arrays.update({f"{name}:all": m.astype(np.float32) for name, m in result["overall"].items()})
    arrays["class_names"] = np.asarray(trained.class_names)
    arrays["counts"] = result["counts"].astype(np.int64)
    np.savez(os.path.join(folder, "excitations.npz"), **arrays)
    chosen = [trained.class_names.index(c) for c in classes]
    reporting.plot_excitations(
        result["per_class"],
        result["overall"],
        [trained.class_names[i] for i in chosen],
        chosen,
        os.path.join(folder, "excitations.png"),
    )
    summary = {
        "split": split,
        "step": trained.step,
        "examples": int(result["counts"].sum()),
        "accuracy": result["accuracy"],
        "replaced_blocks": result["replaced_blocks"],
        "accuracy_with_mean_gates": result["accuracy_with_mean_gates"],
        "blocks": {n: int(v.shape[0]) for n, v in result["overall"].items()},
    }
    reporting.write_json_atomic(os.path.join(folder, "analysis.json"), summary)


def main(argv: list[str] | None = None) -> int:
    parser = cli.run_parser("Mean SE excitations per class, and the replace-with-mean test.")
    parser.add_argument("--split", default=None, help="default: the run's config.data.eval_split")
    parser.add_argument("--classes", default="all", help="comma-separated class names, or all")
    parser.add_argument("--replace-blocks", default=None, help="e.g. block12,block13")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    def body() -> int:
        from senet_jax import inference

        trained = inference.load(args.workdir, args.checkpoint, batch_size=args.batch_size)
        split = args.split or trained.config.data.eval_split
        names = list(trained.class_names)
        classes = names if args.classes == "all" else _parse_list(args.classes, names, "class")
        blocks = None
        if args.replace_blocks:
            blocks = _parse_list(args.replace_blocks, check_has_se(trained), "SE block")
        result = analyze(trained, split, args.batch_size, blocks)
        folder = os.path.join(args.workdir, "analysis", f"{split}-{trained.step}")
        write(result, trained, split, classes, folder)
        print(
            f"{split} at step {trained.step}: accuracy {result['accuracy']:.4f}; with the gates of "
            f"{', '.join(result['replaced_blocks'])} replaced by their mean "
            f"{result['accuracy_with_mean_gates']:.4f}; written to {folder}"
        )
        return 0

    return cli.main_with_errors(body, (AnalysisError,))


if __name__ == "__main__":
    cli.set_up_logging()
    sys.exit(main())
