"""SE-MobileNetV1 from scratch on STL10's 5,000 labelled 96x96 images.

    python train.py --config configs/stl10.py --workdir runs/stl10
    python train.py --config configs/stl10.py --workdir runs/stl10 \
        --config.data.stl10_archive=/data/stl10_binary.tar.gz   # offline: the official archive

Expected result: not measured here (these machines cannot download STL10 and have no
accelerator). For scale, cited figures, not ours: a PyTorch MobileNetV1+SE at stride 32
reached about 65% test accuracy; a WRN-16-8 with flip/crop and cutout reaches 87.3%
(DeVries & Taylor, 2017, "Improved Regularization ... with Cutout"). The aim is >= 88%.

Where each choice comes from:
- stem_strides=1: a stride-32 network leaves a 3x3 map from a 96x96 image; halving the
  total stride (as small-image ports of MobileNet do) keeps a 6x6 map, the single
  biggest lever at this resolution.
- pad-and-crop + flip + cutout 32: the augmentation of the 87.3% WRN-16-8 result
  (cutout size 32 is what that paper used on STL10's 96x96 images).
- SGD + Nesterov 0.9, lr 0.1 per 128 images, weight decay 5e-4 off BN and biases,
  5 warmup epochs then cosine: the standard small-data ResNet/WRN recipe
  (Goyal et al. 2017 for warmup and linear scaling; Loshchilov & Hutter 2017 for cosine).
- label smoothing 0.1 and dropout 0.2: Szegedy et al. 2016; both help with only 500
  images per class.
- 600 epochs: 5,000 images make an epoch 39 steps; cutout results used long schedules.
"""

from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

from senet_jax.data import download


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    # Passed to senet_jax.models.create_model as keyword arguments (with the class count
    # and the compute dtype): a name from list_models() and that architecture's options.
    c.model = ml_collections.ConfigDict()
    c.model.name = "se_mobilenet_v1"
    c.model.width_multiplier = 1.0
    c.model.stem_strides = 1
    c.model.dropout_rate = 0.2
    c.model.depthwise_implementation = "auto"  # or a name in senet_jax.models.ops.depthwise
    c.model.conv_implementation = "auto"  # CPU: "onednn" (float32); GPU/TPU: "native"
    c.model.se = ml_collections.ConfigDict()
    # "se", or a successor in its place: "eca", "cbam", "ge" (Gather-Excite) or "ese"
    # (senet_jax.models.se.KINDS); the options below apply to the kinds that take them.
    c.model.se.kind = "se"
    c.model.se.reduction = 16  # r: the bottleneck is C / r wide (paper Tab. 10)
    c.model.se.squeeze = "avg"  # "avg" or "max" (Tab. 11)
    c.model.se.gate = "sigmoid"  # "sigmoid", "tanh" or "relu" (Tab. 12)
    c.model.se.blocks = "all"  # or a tuple of 1-based block numbers, e.g. (12, 13) (Tab. 13)
    c.model.se.min_features = 1  # the bottleneck is never narrower than this
    c.model.se.extent = 0  # kind "ge": gather extent, 0 (global) or 2, 4, 8, ...
    c.model.se.gather = "pool"  # kind "ge": "pool" (GE-theta-minus) or "conv" (GE-theta)

    # senet_jax.data: where the images come from and how they are augmented.
    c.data = ml_collections.ConfigDict()
    c.data.dataset = "stl10"  # any tfds image classification dataset
    # Typed placeholders (None until set), so --config.data.data_dir=... works on the command line.
    c.data.data_dir = placeholder(str)  # tfds data_dir, local or gs://
    c.data.stl10_archive = placeholder(str)  # stl10_binary.tar.gz or the folder holding it
    c.data.stl10_url = download.STL10_URL  # or a mirror (then set its stl10_sha256)
    c.data.stl10_sha256 = download.STL10_SHA256  # the official archive's, as tfds registers it
    # Held out of the training split, stratified (50 per class), fixed: periodic evaluation
    # and the best checkpoint use it; 0 trains on all 5,000 and keeps the latest checkpoint.
    c.data.validation_examples = 500
    c.data.synthetic_stl10 = placeholder(tuple)  # (train, test): generate an STL10-layout archive
    c.data.train_split = "train"
    c.data.eval_split = "test"
    c.data.image_size = 96
    c.data.crop = "pad_crop"  # "pad_crop", "random_resized_crop" or "none"
    c.data.crop_padding = 0.125  # of the image side: 12 px at 96
    c.data.flip = True
    c.data.cutout_size = 1 / 3  # of the image side: 32 px at 96; 0 disables cutout
    # Per-channel, in [0, 1] units. Left unset they are computed exactly from the training
    # split once and cached beside the prepared data; STL10's train split gives
    # mean (0.4467, 0.4398, 0.4066), std (0.2603, 0.2566, 0.2713).
    c.data.mean = placeholder(tuple)
    c.data.std = placeholder(tuple)
    c.data.cache = True
    # Streamed input (senet_jax/data/file_stream.py): each process reads its own files, decodes per
    # example, shuffles through a bounded buffer. On with stream=True, or by itself when the
    # training split decoded at image_size would exceed max_cache_bytes (STL10: 138 MB).
    c.data.stream = False
    c.data.max_cache_bytes = 16 * 2**30
    c.data.shuffle_buffer = 10_000  # records per process (streamed only)
    c.data.eval_crop = 0.875  # streamed evaluation: resize to image_size / eval_crop, centre crop
    # Semi-supervised runs (ssl.method below): which training images keep their labels and
    # where the unlabelled ones come from. Unset, every label of train_split is used. Set,
    # data.cutout_size is the strong view's alone, even under ssl.method="none".
    c.data.unlabelled_split = placeholder(str)  # "unlabelled" (STL10), a tfds split, or "rest"
    c.data.labels_per_class = placeholder(int)  # a stratified labelled subset of train_split
    c.data.labels_seed = 0  # fixes that subset, whatever the host count
    c.data.labelled_fold = placeholder(int)  # STL10's official 1,000-label folds, 0-9
    c.data.strong_augment = "randaugment"  # the unlabelled strong view, then cutout

    # senet_jax.optim: optax chain and schedule.
    c.optim = ml_collections.ConfigDict()
    c.optim.name = "sgd"  # "sgd" (Nesterov momentum) or "adamw"
    c.optim.learning_rate = 0.1  # peak, for batch_size 128: scale it linearly with the batch
    c.optim.momentum = 0.9
    c.optim.weight_decay = 5e-4  # not applied to BatchNorm scales/biases or biases
    c.optim.schedule = "warmup_cosine"  # "warmup_cosine", "constant" or "step"
    c.optim.warmup_epochs = 5
    c.optim.nesterov = True  # the paper's ImageNet recipe uses plain momentum (False)
    c.optim.decay_epochs = 30  # "step": the rate is multiplied by decay_factor every decay_epochs
    c.optim.decay_factor = 0.1
    c.optim.label_smoothing = 0.1

    # senet_jax.semi_supervised: "none" trains on the labels alone (configs/stl10_fixmatch.py).
    c.ssl = ml_collections.ConfigDict()
    c.ssl.method = "none"  # "none", "fixmatch" or "flexmatch"
    c.ssl.threshold = 0.95  # tau: the confidence a pseudo-label needs (FlexMatch: its top)
    c.ssl.unlabelled_ratio = 7  # mu: unlabelled images per labelled one in a step
    c.ssl.weight = 1.0  # lambda_u: the unlabelled loss's weight
    c.ssl.ema_decay = 0.0  # weight average evaluated instead of the weights; 0 turns it off
    # BatchNorm over the labelled images and both unlabelled views together ("joint", as
    # FixMatch), the labelled images alone ("split"), or the RandAugment views alone
    # ("strong_apart"; README "Semi-supervised CIFAR-10" compares them).
    c.ssl.batch_norm = "joint"

    c.batch_size = 128  # global, over all devices and processes
    c.num_epochs = 600
    # Set, the run trains exactly this many steps whatever num_epochs says (schedule, warmup and
    # evaluation still count epochs of the real steps_per_epoch): equal budgets across methods.
    c.total_steps = placeholder(int)
    c.seed = 0
    c.half_precision = False  # bfloat16 compute, float32 parameters
    # What the backward pass keeps of the forward (senet_jax/remat.py): "none", or
    # "conv_outputs" (recompute BatchNorm, activations and SE gates: less memory, more compute).
    c.rematerialize = "none"
    # The most images one device puts through a forward and backward pass: a larger per-device
    # batch is computed in equal parts, one after another, and their mean gradient applied once
    # (senet_jax.steps.accumulate_gradients). The backward's temporaries shrink with the part:
    # 4.8 GB for 128 images here, 2.4 GB for 64. BatchNorm normalises each part on its own, as
    # devices without cross-device statistics do. None: the whole per-device batch at once.
    # With ssl.method set it counts labelled images (each brings 2 mu unlabelled views).
    c.microbatch_size = 64
    # XLA:CPU only: keep freed host memory in one never-trimmed heap (senet_jax/host_memory.py).
    # Fewer page faults per step, but the heap fragments in a whole run: off by default.
    c.host_memory_reuse = False
    c.init_from = placeholder(str)  # a model directory (python -m senet_jax.weights) to start from

    # Bookkeeping.
    c.log_every_steps = 50
    c.eval_every_epochs = 10
    c.checkpoint_every_steps = 1_000
    c.keep_checkpoints = 3
    return c
