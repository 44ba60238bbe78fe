"""The PyTorch peer of benchmarks/train_step.py for the ResNet family: timm's model, on CPU.

    python benchmarks/torch_resnet_peer.py --model seresnet50 --batch-size 16 --image-size 128

Times a float32 train step (forward, cross-entropy, backward, SGD with momentum and weight
decay) and an eval-mode forward on random images, channels_last, random weights
(pretrained=False: nothing is downloaded). Warmup steps are untimed; the median of
--repeats runs of --steps steps is reported, as train_step.py does. Prints one JSON
object, then `train_step images_per_second=N`. Needs the `convert` extra (torch, timm).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="seresnet50", help="a timm model name")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-eval", action="store_true")
    return p.parse_args(argv)


def median_rate(fn, repeats, images):
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(images / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def main(argv=None):
    a = parse_args(argv)
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model(a.model, pretrained=False, num_classes=a.num_classes)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch_size, 3, a.image_size, a.image_size).to(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, a.num_classes, (a.batch_size,))

    def train(n):
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        return float(loss)

    train(a.warmup)
    train_ips, runs = median_rate(lambda: train(a.steps), a.repeats, a.steps * a.batch_size)
    result = {
        "model": a.model,
        "peer": f"torch {torch.__version__}, timm {timm.__version__}, channels_last, float32",
        "threads": torch.get_num_threads(),
        "batch_size": a.batch_size,
        "image_size": a.image_size,
        "params": sum(p.numel() for p in model.parameters()),
        "train_images_per_second": round(train_ips, 1),
        "train_images_per_second_runs": [round(r, 1) for r in runs],
    }
    if not a.no_eval:
        model.eval()

        def evaluate(n):
            with torch.no_grad():
                for _ in range(n):
                    model(x)

        evaluate(a.warmup)
        eval_ips, _ = median_rate(lambda: evaluate(a.steps), a.repeats, a.steps * a.batch_size)
        result["eval_images_per_second"] = round(eval_ips, 1)
    result["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result["host_cores"] = os.cpu_count()
    print(json.dumps(result, indent=1))
    print(f"train_step images_per_second={result['train_images_per_second']}")


if __name__ == "__main__":
    main()
