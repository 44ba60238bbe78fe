"""SE-ResNet-50 on ImageNet (ILSVRC 2012), the paper's recipe (Hu et al., SENet, Sec. 6.1).

    # once, on any machine: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in
    # $DATA_DIR/downloads/manual/, then prepare into the shared data_dir (see README):
    python -c "import tensorflow_datasets as tfds; tfds.builder('imagenet2012', \
        data_dir='gs://BUCKET/tfds').download_and_prepare()"
    # on every worker of the slice, the same command:
    python train.py --config configs/imagenet_se_resnet50.py --workdir gs://BUCKET/runs/se50 \
        --config.data.data_dir=gs://BUCKET/tfds

Paper figures (Tab. 2, single 224x224 crop, top-1 / top-5 error on the validation set):
SE-ResNet-50 23.29% / 6.62% against 24.80% / 7.48% for its ResNet-50 baseline
(configs/imagenet_resnet50.py). Not reproduced here: these machines have no ImageNet.

Recipe: synchronous SGD, momentum 0.9 (plain, not Nesterov), batch 1024, initial rate 0.6
divided by 10 every 30 epochs, 100 epochs, random-resized-crop to 224 and horizontal flip;
evaluation resizes the shorter side to 256 and takes the centre 224 (eval_crop 0.875).
The data streams (each host reads its own tfrecord files); there is no holdout, so the
official validation split is both the periodic evaluation and the final "test" figure.
"""

from __future__ import annotations

from configs import stl10


def get_config():
    c = stl10.get_config()
    c.model.name = "se_resnet50"
    c.model.stem_strides = 2
    c.model.dropout_rate = 0.0

    c.data.dataset = "imagenet2012"  # tfds, manual download (see above)
    c.data.stream = True
    c.data.validation_examples = 0  # the streamed path keeps no holdout
    c.data.train_split = "train"
    c.data.eval_split = "validation"  # the official 50,000 images
    c.data.image_size = 224
    c.data.crop = "random_resized_crop"
    c.data.flip = True
    c.data.cutout_size = 0
    c.data.eval_crop = 0.875
    c.data.shuffle_buffer = 10_000
    c.data.mean = (0.485, 0.456, 0.406)  # the usual ImageNet statistics: no pass to compute them
    c.data.std = (0.229, 0.224, 0.225)

    c.optim.name = "sgd"
    c.optim.nesterov = False
    c.optim.momentum = 0.9
    c.optim.learning_rate = 0.6
    c.optim.schedule = "step"
    c.optim.decay_epochs = 30
    c.optim.decay_factor = 0.1
    c.optim.warmup_epochs = 0
    c.optim.weight_decay = 1e-4
    c.optim.label_smoothing = 0.0

    c.batch_size = 1024
    c.microbatch_size = None  # each accelerator computes its share whole (BatchNorm over it)
    c.num_epochs = 100
    c.half_precision = True
    c.log_every_steps = 100
    c.eval_every_epochs = 1
    c.checkpoint_every_steps = 2_000
    c.keep_checkpoints = 3
    return c
