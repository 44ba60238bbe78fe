"""timm weights in Flax: same logits as timm in eval mode, clear errors, the model directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from senet_jax import weights

weights.allow_torch_beside_tensorflow()  # whichever test module loaded TensorFlow first
torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_timm(name, seed=0):
    """A timm model in eval mode with random weights and BatchNorm statistics (so BN matters)."""
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model


def state_dict(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def images(n=2, size=64):
    return np.random.RandomState(0).randn(n, 3, size, size).astype(np.float32)


def max_relative_difference(ours, ref):
    return float(np.abs(np.asarray(ours) - ref).max() / np.abs(ref).max())


def flax_logits(model, variables, x_nchw):
    return jax.jit(lambda v, x: model.apply(v, x, train=False))(
        variables, x_nchw.transpose(0, 2, 3, 1)
    )


# The smallest member of each imported family; legacy_seresnet50 is the stride-in-1x1 bottleneck.
FAMILIES = [
    "resnet18",
    "seresnet18",
    "legacy_seresnet18",
    "legacy_seresnet50",
    "resnext50_32x4d",
    "legacy_seresnext26_32x4d",
    "legacy_senet154",
    "mobilenetv1_100",
]


@pytest.mark.parametrize("name", FAMILIES)
def test_logits_match_timm(name):
    ref_model = random_timm(name)
    x = images()
    with torch.no_grad():
        ref = ref_model(torch.from_numpy(x)).numpy()
    model, variables = weights.from_timm(name, state_dict(ref_model))
    diff = max_relative_difference(flax_logits(model, variables, x), ref)
    print(f"{name}: largest relative logits difference {diff:.2e}")
    assert diff < 1e-4


def test_a_state_dict_of_another_architecture_is_one_value_error_line():
    sd = state_dict(timm.create_model("resnet34", pretrained=False))
    with pytest.raises(ValueError) as e:
        weights.from_timm("resnet18", sd)
    message = str(e.value)
    assert "\n" not in message and "resnet18" in message
    assert "extra 80: layer1.2.bn1.bias" in message and "(80 in all)" in message
    sd = state_dict(timm.create_model("resnet18", pretrained=False))
    sd["conv1.weight"] = np.zeros((32, 3, 7, 7), np.float32)
    del sd["fc.bias"]
    with pytest.raises(ValueError, match=r"missing 1: fc\.bias; mis-shaped 1: conv1\.weight"):
        weights.from_timm("resnet18", sd)
    with pytest.raises(ValueError, match="not supported.*legacy_senet154"):
        weights.from_timm("efficientnet_b0", sd)


def test_cli_writes_a_model_directory_that_load_pretrained_reads(tmp_path, capsys):
    from safetensors.numpy import save_file

    ref_model = random_timm("resnet18", seed=1)
    checkpoint = str(tmp_path / "resnet18.safetensors")
    save_file(state_dict(ref_model), checkpoint)
    out = str(tmp_path / "model")
    assert weights.main(["--timm", "resnet18", "--checkpoint", checkpoint, "--out", out]) == 0
    assert sorted(os.listdir(out)) == ["model.json", "variables"]
    with open(os.path.join(out, "model.json")) as f:
        meta = json.load(f)
    assert meta["model"]["name"] == "resnet18" and meta["num_classes"] == 1000
    assert meta["model"]["stride_in_1x1"] is False and meta["model"]["stem_pool"] == "pad"
    assert set(meta["model"]["se"]) == {
        "kind",
        "extent",
        "gather",
        "reduction",
        "squeeze",
        "gate",
        "blocks",
        "min_features",
        "placement",
    }
    assert len(meta["class_names"]) == 1000 and meta["class_names"][0].startswith("tench")
    assert meta["preprocessing"] == {
        "input_size": 224,
        "resize_size": 235,
        "crop_size": 224,
        "crop_pct": 0.95,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "interpolation": "bicubic",
    }
    assert meta["params"] == 11_689_512

    model, variables, info = weights.load_pretrained(out)
    assert info == meta
    x = images()
    with torch.no_grad():
        ref = ref_model(torch.from_numpy(x)).numpy()
    assert max_relative_difference(flax_logits(model, variables, x), ref) < 1e-4

    # The same directory again, and bad inputs: one error line, exit 2.
    bad = [
        ["--timm", "resnet18", "--checkpoint", checkpoint, "--out", out],
        [
            "--timm",
            "vit_base_patch16_224",
            "--checkpoint",
            checkpoint,
            "--out",
            str(tmp_path / "a"),
        ],
        [
            "--timm",
            "resnet18",
            "--checkpoint",
            str(tmp_path / "nope.pth"),
            "--out",
            str(tmp_path / "b"),
        ],
        ["--timm", "resnet34", "--checkpoint", checkpoint, "--out", str(tmp_path / "c")],
    ]
    capsys.readouterr()
    for argv in bad:
        assert weights.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not any(os.path.exists(tmp_path / d) for d in "abc")


def test_cli_reads_pth_checkpoints(tmp_path):
    ref_model = random_timm("mobilenetv1_100", seed=2)
    checkpoint = str(tmp_path / "mobilenet.pth")
    torch.save({"state_dict": ref_model.state_dict()}, checkpoint)
    out = str(tmp_path / "model")
    assert (
        weights.main(["--timm", "mobilenetv1_100", "--checkpoint", checkpoint, "--out", out]) == 0
    )
    model, variables, info = weights.load_pretrained(out)
    assert info["model"]["relu6"] is True and info["preprocessing"]["mean"] == [0.5, 0.5, 0.5]
    x = images()
    with torch.no_grad():
        ref = ref_model(torch.from_numpy(x)).numpy()
    assert max_relative_difference(flax_logits(model, variables, x), ref) < 1e-4


def test_load_pretrained_rejects_other_directories(tmp_path):
    with pytest.raises(ValueError, match="not a senet_jax model directory"):
        weights.load_pretrained(str(tmp_path))


def test_the_library_does_not_import_torch_or_timm():
    code = (
        "import sys, numpy as np\n"
        "import senet_jax, senet_jax.models, senet_jax.weights\n"
        "try:\n"
        "    senet_jax.weights.from_timm('resnet18', {'fc.weight': np.zeros((3, 512))})\n"
        "except ValueError:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_torch_and_timm_load_after_tensorflow(tmp_path):
    """A notebook that read data (TensorFlow loaded) then converts weights: no crash."""
    path = str(tmp_path / "tiny.pth")
    torch.save({"state_dict": {"fc.weight": torch.ones(2, 3)}}, path)
    code = (
        "import tensorflow\n"
        "from senet_jax import weights\n"
        f"state = weights.read_checkpoint({path!r})\n"
        "assert state['fc.weight'].shape == (2, 3)\n"
        "print(weights.timm_preprocessing('seresnet50')['crop_size'])\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "224"


def _tiny_model_directory(tmp_path, num_classes=1000):
    """A model directory as the converter writes it, of the smoke config's network."""
    from configs import smoke
    from senet_jax.models import create_model

    options = smoke.get_config().model.to_dict()
    model = create_model(**options, num_classes=num_classes)
    variables = model.init(jax.random.key(3), np.zeros((1, 32, 32, 3), np.float32))
    out = str(tmp_path / "pretrained")
    weights.save_pretrained(out, options, variables, {"num_classes": num_classes})
    return out, variables


def test_initialise_from_grafts_the_weights_and_a_new_head(tmp_path):
    from configs import smoke
    from senet_jax import optim, steps

    directory, saved = _tiny_model_directory(tmp_path)
    config = smoke.get_config()
    tx, _ = optim.create_optimizer(config.optim, num_epochs=1, steps_per_epoch=1)
    state = steps.create_train_state(
        steps.create_model(config, 10), tx, jax.random.key(0), (32, 32, 3)
    )
    grafted = weights.initialise_from(state, directory, num_classes=10)
    np.testing.assert_array_equal(
        grafted.params["stem"]["kernel"], saved["params"]["stem"]["kernel"]
    )
    np.testing.assert_array_equal(
        grafted.batch_stats["stem_bn"]["mean"], saved["batch_stats"]["stem_bn"]["mean"]
    )
    assert grafted.params["classifier"]["kernel"].shape[-1] == 10  # a fresh 10-class head
    np.testing.assert_array_equal(
        grafted.params["classifier"]["kernel"], state.params["classifier"]["kernel"]
    )
    other = steps.create_train_state(
        steps.create_model(smoke_with(config, width_multiplier=0.5), 10),
        tx,
        jax.random.key(0),
        (32, 32, 3),
    )
    with pytest.raises(weights.InitFromError, match=r"config\.init_from: .* does not fit") as e:
        weights.initialise_from(other, directory, num_classes=10)
    assert "\n" not in str(e.value)


def smoke_with(config, **model_options):
    config = config.copy_and_resolve_references()
    config.model.update(model_options)
    return config


def test_train_py_fine_tunes_from_a_model_directory(tmp_path, compile_cache):
    from training_runs import run_train

    directory, _ = _tiny_model_directory(tmp_path)
    workdir = str(tmp_path / "run")
    proc = run_train(workdir, compile_cache, init_from=directory, num_epochs=1, warmup_epochs=0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "new classifier head for 10 classes (the weights have 1000)" in proc.stderr
