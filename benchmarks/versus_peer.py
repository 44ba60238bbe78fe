"""Times the JAX train step against the PyTorch peer, alternating, and prints the ratio.

    python benchmarks/versus_peer.py --model resnet50 --cycles 4
    python benchmarks/versus_peer.py --model se_resnet50 --cycles 4 --eval

One run of each side says little on a shared machine: its speed drifts by 10-20% within
minutes. Each cycle therefore runs JAX, peer, peer, JAX (each run its own process, the
commands of benchmarks/train_step.py and benchmarks/torch_resnet_peer.py, in timm's layout:
stride on the 3x3, PyTorch's stem pooling), so a drift weighs on both sides alike. Prints each
cycle's figures as it goes, then one JSON object (every run, the medians, the ratio of the
medians and each cycle's ratio), then the last line `versus_peer train_ratio=R` (JAX over
peer images/s: above 1 is faster). Needs the `convert` extra (torch, timm) for the peer.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
SIDES = ("jax", "peer")
# The order of the runs in one cycle: each side once before and once after the other.
CYCLE = ("jax", "peer", "peer", "jax")


def timm_name(model: str) -> str:
    """The peer's timm name for one of ours: se_resnet50 -> seresnet50, resnet50 -> resnet50."""
    return "se" + model[len("se_") :] if model.startswith("se_") else model


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="resnet50", help="our model name (a ResNet-family one)")
    p.add_argument("--peer-model", default=None, help="timm's name (default: from --model)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="steps per timed run, both sides")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per process, both sides")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps, both sides")
    p.add_argument("--cycles", type=int, default=4, help="JAX-peer-peer-JAX cycles")
    p.add_argument("--eval", action="store_true", help="also time the evaluation forward")
    a = p.parse_args(argv)
    for name in ("batch_size", "image_size", "steps", "repeats", "cycles"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.warmup < 0:
        p.error("--warmup must be at least 0")
    a.peer_model = a.peer_model or timm_name(a.model)
    return a


def commands(a) -> dict[str, list[str]]:
    """Each side's command line, with the same batch, image size and step counts."""
    common = [
        "--batch-size", str(a.batch_size),
        "--image-size", str(a.image_size),
        "--steps", str(a.steps),
        "--repeats", str(a.repeats),
        "--warmup", str(a.warmup),
    ]  # fmt: skip
    if not a.eval:
        common.append("--no-eval")
    jax_cmd = [
        sys.executable, os.path.join(HERE, "train_step.py"), "--model", a.model, *common,
        "--stem-strides", "2",
        "--model-option", "stride_in_1x1=false",
        "--model-option", "stem_pool=pad",
    ]  # fmt: skip
    peer_cmd = [
        sys.executable, os.path.join(HERE, "torch_resnet_peer.py"), "--model", a.peer_model,
        *common,
    ]  # fmt: skip
    return {"jax": jax_cmd, "peer": peer_cmd}


class RunFailed(RuntimeError):
    pass


def figures(stdout: str) -> dict[str, float]:
    """Train (and, when timed, eval) images/s from a benchmark's output: its JSON object."""
    start = stdout.find("{")
    end = stdout.rfind("}")
    if start < 0 or end < start:
        raise RunFailed("no JSON object in its output")
    try:
        result = json.loads(stdout[start : end + 1])
        out = {"train": float(result["train_images_per_second"])}
        if "eval_images_per_second" in result:
            out["eval"] = float(result["eval_images_per_second"])
    except (ValueError, KeyError, TypeError) as e:
        raise RunFailed(f"its output has no readable images/s figure ({e!r})") from None
    return out


def run_process(cmd: Sequence[str]) -> dict[str, float]:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RunFailed(f"exit status {done.returncode}: {tail}")
    return figures(done.stdout)


def run_cycles(
    cmds: dict[str, list[str]],
    cycles: int,
    run: Callable[[Sequence[str]], dict[str, float]] = run_process,
    report: Callable[[str], None] = print,
) -> dict[str, list[dict[str, float]]]:
    """Every run's figures per side, in the order CYCLE, `cycles` times."""
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for i in range(cycles):
        this = {side: [] for side in SIDES}
        for side in CYCLE:
            try:
                this[side].append(run(cmds[side]))
            except RunFailed as e:
                raise RunFailed(f"the {side} run ({' '.join(cmds[side])}) failed: {e}") from None
        for side in SIDES:
            runs[side].extend(this[side])
        shown = "  ".join(
            f"{side} " + " ".join(f"{r['train']:.1f}" for r in this[side]) for side in SIDES
        )
        report(f"cycle {i + 1}/{cycles}: train img/s  {shown}")
    return runs


def summarize(runs: dict[str, list[dict[str, float]]]) -> dict:
    """Medians per side and measure, their ratio (JAX / peer), and each cycle's ratio."""
    out: dict = {"runs": runs}
    for measure in ("train", "eval"):
        values = {side: [r[measure] for r in runs[side] if measure in r] for side in SIDES}
        if not all(values.values()):
            continue
        medians = {side: statistics.median(v) for side, v in values.items()}
        out[measure] = {
            "jax_median": round(medians["jax"], 2),
            "peer_median": round(medians["peer"], 2),
            "ratio": round(medians["jax"] / medians["peer"], 3),
            # Runs 2i and 2i+1 of a side belong to cycle i.
            "cycle_ratios": [
                round(
                    statistics.mean(values["jax"][2 * i : 2 * i + 2])
                    / statistics.mean(values["peer"][2 * i : 2 * i + 2]),
                    3,
                )
                for i in range(len(values["jax"]) // 2)
            ],
        }
    return out


def main(argv=None):
    a = parse_args(argv)
    for module in ("torch", "timm"):
        if importlib.util.find_spec(module) is None:
            print(f"error: the peer needs {module}: pip install -e '.[convert]'", file=sys.stderr)
            raise SystemExit(2)
    cmds = commands(a)
    try:
        runs = run_cycles(cmds, a.cycles, report=lambda line: print(line, flush=True))
    except RunFailed as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    summary = {
        "model": a.model,
        "peer_model": a.peer_model,
        "batch_size": a.batch_size,
        "image_size": a.image_size,
        "cycles": a.cycles,
        "commands": {side: " ".join(cmd[1:]) for side, cmd in cmds.items()},
        **summarize(runs),
    }
    print(json.dumps(summary, indent=1))
    print(f"versus_peer train_ratio={summary['train']['ratio']}")


if __name__ == "__main__":
    main()
