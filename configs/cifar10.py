"""CIFAR-10 at 32x32: SE-MobileNetV1 (or any registry model) from scratch, budgeted or full.

    python train.py --config configs/cifar10.py --workdir runs/cifar10
    python train.py --config configs/cifar10.py:budget --workdir runs/cifar10_budget \
        --config.data.dataset=folder:/data/cifar10     # JPEG folders: train/<class>/, test/<class>/
    python -m senet_jax.sweep --config configs/cifar10.py:budget \
        --set model.name=mobilenet_v1,se_mobilenet_v1 --seeds 0,1,2 \
        --baseline model.name=mobilenet_v1 --workdir runs/cifar10_sweep \
        -- --config.data.dataset=folder:/data/cifar10
    python train.py --config configs/cifar10.py:full,resnet --workdir runs/cifar10_se_resnet18
    python -m senet_jax.sweep --config configs/cifar10.py:fixmatch \
        --set ssl.method=none,fixmatch --seeds 0,1,2 --baseline ssl.method=none \
        --workdir runs/cifar10_fixmatch -- --config.data.dataset=folder:/data/cifar10

The argument after the colon is a preset, optionally followed by ",resnet": the
ResNet family with the CIFAR stem (se_resnet18 by default; --config.model.name=resnet18 for
the plain baseline).

The presets (default "full"):

- "full": 200 epochs, the length of the published CIFAR-10 figures. Regularisation for a
  long schedule: cutout 16 px (DeVries & Taylor, 2017), label smoothing 0.1, dropout 0.2.
- "budget": 8 epochs (about 35 minutes of MobileNetV1 on an idle 2-core CPU at about
  175 img/s). A short schedule underfits before it overfits, so the preset turns cutout,
  label smoothing and dropout off and warms up for one epoch only:
  regularisation that pays over 200 epochs costs accuracy over 8. Measured (mobilenet_v1,
  seed 0, README "CIFAR-10"): turning it back on costs 8.61 pp at 4 epochs (63.66% ->
  55.05%) and 6.94 pp at 8 (77.47% -> 70.53%).
- "fixmatch": FixMatch (Sohn et al. 2020) with 4,000 labels (400 a class, data.labels_seed)
  and the other 41,000 training images unlabelled ("rest"; 5,000 stay held out), with
  configs/stl10_fixmatch.py's settings: threshold 0.95, mu 7, lambda_u 1, EMA 0.999
  (warmed up, semi_supervised/ema.py: without that, 500 steps would leave 61% of the random
  initialisation in the average),
  RandAugment then cutout 16 px on the strong view only, lr 0.03 without warmup, 64 labelled
  images a step; no dropout or label smoothing, as "budget". The run is total_steps=500
  steps whatever num_epochs says, so ssl.method=none (the sweep's baseline) trains on the
  same 4,000 labels alone for as many steps, with the same labelled batches: cutout is the
  strong view's, and the labelled stream depends on the seed and the labelled subset alone.
  The baseline keeps no EMA (the supervised step has none) and takes minutes, not an hour.
  500 steps is about an hour of se_mobilenet_v1 on an idle 2-core CPU, estimated (not timed
  in a whole run): benchmarks/train_step.py with --ssl fixmatch --batch-size 64 --image-size
  32 --stem-strides 1 --steps 3 --repeats 2 --warmup 1 (960 images a step) ran at 73.2 and
  100.2 img/s against 122.6 and 105.6 img/s for the supervised step at batch 128, in
  alternate rounds under nice -n 19 beside a training run on both cores (2026-12-07, AMD
  EPYC): 0.76 of the supervised rate, so about 133 img/s at the idle 175 img/s, 7.2 s a
  step, 500 steps and evaluation in about an hour. 500 steps are 5.5 passes over the
  unlabelled images and 8 over the labelled ones: far from FixMatch's 2**20 steps.

Expected result ("budget", measured over seeds 0, 1, 2 on a 2-core AMD EPYC CPU with the
JPEG folders, main at 5088711): mobilenet_v1 77.25% test accuracy (77.47, 77.18, 77.10),
se_mobilenet_v1 77.43% (77.41, 77.18, 77.71); the paired SE gain +0.18 pp, 95% interval
-0.74 to +1.10, so no gain is resolved at 8 epochs. A run takes 31 minutes on a quiet
machine (200 img/s), up to an hour when it shares the CPU; peak RSS 5.0-5.7 GB.
Published full-length figures for scale, theirs and not ours: ResNet-18 about 95% after 200
epochs; the SE paper's CIFAR-10 errors ResNet-110 6.37% -> SE 5.21%,
ResNet-164 5.46% -> 4.39%, WRN-16-8 4.27% -> 3.88%.
"fixmatch" as set, seed 0 (commit 96f7cfa, same machine): 36.93% test accuracy (EMA weights;
36.91% raw) against 36.49% for the labels alone; at 1,500 steps with mu 2, 48.40% (48.57%
raw) against 48.61%. No gain within an hour: the mask rate stays under 4% (README,
"Semi-supervised CIFAR-10"). Over seeds 0, 1, 2 with a step 4.7x cheaper
(--config.model.stem_strides=2 --config.ssl.unlabelled_ratio=2 --config.ssl.threshold=0.8
--config.total_steps=3000; commit 1691e14, 28 min a FixMatch run, 9 min for the labels alone):
FixMatch 48.68% against 48.69%, paired difference -0.01 pp (95% interval -0.79 to +0.78),
mask rate 25-28% at the end with 71-73% of those pseudo-labels right: no gain either.
With --config.optim.learning_rate=0.1 as well (seed 0), the labels alone reach 55.00% and
FixMatch 49.90%; a run without the unlabelled loss but with FixMatch's batch reaches 49.66%,
so the loss is in the BatchNorm batch the labelled images share (README, "Semi-supervised
CIFAR-10", also has --config.ssl.batch_norm=split: 52.62%, and strong_apart: 52.12%).
With strong_apart and --config.total_steps=6000 (50-64 min a FixMatch run, 14-19 min
for the labels alone), over seeds 0, 1, 2: FixMatch 64.00% against 59.20%, paired
difference +4.80 pp (95% interval +1.17 to +8.44), ahead in every seed.
The cited figure, theirs and over 2**20 steps of a WRN-28-2:
FixMatch (RandAugment) with 4,000 labels, 4.26 +- 0.05% test error (Sohn et al. 2020,
"FixMatch", table 2); expect far less from 500 steps of MobileNetV1.

Where each choice comes from:
- stem_strides=1 (MobileNet) and the 3x3 stride-1 stem without max-pool (ResNet family,
  ":...,resnet", model.stem="cifar"): a 32x32 image keeps a 2x2 (MobileNet) or 4x4
  (ResNet) final map instead of a 1x1, as every CIFAR port of these networks does.
  resnet18 so built has 11,173,962 parameters for 10 classes, se_resnet18 11,263,042.
- pad-and-crop 4 px + flip: the standard CIFAR augmentation (He et al., 2016).
- SGD + Nesterov 0.9, lr 0.1 per 128 images, weight decay 5e-4 off BatchNorm and biases,
  warmup then cosine decay.
- 5,000 training images held out (stratified) for periodic evaluation and the best
  checkpoint; the test split is read once, at the end.
"""

from __future__ import annotations

import ml_collections

from configs import stl10, stl10_se_resnet

PRESETS = ("full", "budget", "fixmatch")
# configs/cifar10.py:fixmatch: steps of one FixMatch run, about an hour of se_mobilenet_v1 on
# a 2-core CPU (the docstring has the measurement); its labels-alone baseline takes as many.
FIXMATCH_STEPS = 500
FAMILIES = ("mobilenet", "resnet")


def get_config(argument: str = "full") -> ml_collections.ConfigDict:
    preset, _, family = argument.partition(",")
    family = family or "mobilenet"
    if preset not in PRESETS or family not in FAMILIES:
        raise ValueError(
            f"configs/cifar10.py:{argument}: write PRESET[,FAMILY] with PRESET one of "
            f"{', '.join(PRESETS)} and FAMILY one of {', '.join(FAMILIES)}"
        )
    if family == "resnet":
        c = stl10_se_resnet.get_config()
        c.model.name = "se_resnet18"
        c.model.stem = "cifar"  # 3x3 stride-1 convolution, no max-pool: a 4x4 last map
        c.model.stride_in_1x1 = False  # the CIFAR ResNets stride in the 3x3
    else:
        c = stl10.get_config()
        c.model.name = "se_mobilenet_v1"
    c.model.stem_strides = 1
    _cifar10_data(c)
    _budget(c, preset)
    if preset == "fixmatch":
        _fixmatch(c)
    return c


def _cifar10_data(c: ml_collections.ConfigDict) -> None:
    c.data.dataset = "cifar10"  # tfds downloads it; or folder:/path for the JPEG folders
    c.data.validation_examples = 5_000
    c.data.image_size = 32
    c.data.crop_padding = 0.125  # 4 px at 32
    c.optim.learning_rate = 0.1
    c.batch_size = 128
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1_000
    c.microbatch_size = None  # 32x32 batches fit whole: BatchNorm over the batch, as measured


def _budget(c: ml_collections.ConfigDict, preset: str) -> None:
    """Regularisation follows the schedule's length (see the docstring)."""
    if preset == "fixmatch":  # no dropout or label smoothing; cutout on the strong view only
        c.data.cutout_size = 0.5  # 16 px at 32, FixMatch's
        c.optim.label_smoothing = 0.0
        c.model.dropout_rate = 0.0
        c.optim.warmup_epochs = 0
        c.eval_every_epochs = 2
    elif preset == "full":
        c.num_epochs = 200
        c.eval_every_epochs = 10
        c.data.cutout_size = 0.5  # 16 px at 32
        c.optim.label_smoothing = 0.1
        c.model.dropout_rate = 0.2
        c.optim.warmup_epochs = 5
    else:
        c.num_epochs = 8
        c.eval_every_epochs = 2
        c.data.cutout_size = 0.0
        c.optim.label_smoothing = 0.0
        c.model.dropout_rate = 0.0
        c.optim.warmup_epochs = 1


def _fixmatch(c: ml_collections.ConfigDict) -> None:
    """FixMatch with 4,000 labels (configs/stl10_fixmatch.py's settings) over a fixed number
    of steps, so that ssl.method=none trains as many steps on the same labelled batches."""
    c.data.labels_per_class = 400  # 4,000 labels, stratified, fixed by data.labels_seed
    c.data.unlabelled_split = "rest"  # the other 41,000 training images (5,000 held out)
    c.ssl.method = "fixmatch"
    c.ssl.threshold = 0.95
    c.ssl.unlabelled_ratio = 7
    c.ssl.weight = 1.0
    c.ssl.ema_decay = 0.999
    c.data.strong_augment = "randaugment"
    c.optim.learning_rate = 0.03
    c.batch_size = 64  # labelled images a step; FixMatch adds 7 x 64 unlabelled ones
    c.total_steps = FIXMATCH_STEPS  # num_epochs is then ignored: equal budgets per method
