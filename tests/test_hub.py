"""Weights by name from a loopback hub: download, resume, cache, errors, no torch needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hub_server import HubServer

from senet_jax import hub, inference, weights

weights.allow_torch_beside_tensorflow()
torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The smallest SE network timm has weights for. timm keeps them as a .pth at a release address;
# the hub-path tests serve them as model.safetensors from a loopback hub repository instead,
# through a facts entry that names one (PATCH_FACTS: put in by monkeypatching here and by
# sitecustomize in subprocesses).
NAME = "legacy_seresnet18.in1k"
HUB_REPO = "timm/" + NAME
PATCH_FACTS = (
    "from senet_jax import hub\n"
    "_facts = hub.table()['weights']\n"
    f"_facts[{NAME!r}] = {{**_facts[{NAME!r}], 'hf_hub_id': {HUB_REPO!r}}}\n"
    f"_facts[{NAME!r}].pop('url')\n"
)
HIDE_TORCH = (
    "import sys\n"
    "class _Hide:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'timm'):\n"
    "            raise ImportError(f'{name} is hidden by the test')\n"
    "sys.meta_path.insert(0, _Hide())\n"
)


def test_the_facts_are_timms():
    from timm.models import get_pretrained_cfg

    known = hub.table()
    for name, facts in known["weights"].items():
        cfg = get_pretrained_cfg(name)
        # Where timm says the weights live: a hub repository, or else a .pth at an address.
        assert facts.get("hf_hub_id") == cfg.hf_hub_id, name
        assert facts.get("url") == (None if cfg.hf_hub_id else cfg.url), name
        assert cfg.hf_hub_id or facts["url"].endswith(".pth"), name
        assert facts["input_size"] == cfg.input_size[-1] and facts["crop_pct"] == cfg.crop_pct
        assert facts["mean"] == list(cfg.mean) and facts["std"] == list(cfg.std), name
        assert facts["interpolation"] == cfg.interpolation, name
        assert facts["num_classes"] == cfg.num_classes == 1000, name
    for architecture, tag in known["default_tags"].items():
        assert get_pretrained_cfg(architecture).tag == tag, architecture
        weights.timm_architecture(architecture)  # every one converts
    assert len(known["weights"]) == 76 and "legacy_seresnet50.in1k" in known["weights"]
    on_the_hub = {n for n, f in known["weights"].items() if "hf_hub_id" in f}
    assert not any(n.startswith("legacy_") for n in on_the_hub)
    assert set(hub.HUB_HOSTED_SE) <= on_the_hub
    names = hub.imagenet_class_names()
    info = timm.data.ImageNetInfo()
    assert names == [info.index_to_description(i) for i in range(1000)]


def test_names_resolve_with_and_without_a_tag():
    assert hub.resolve("timm:legacy_seresnet50") == hub.resolve("legacy_seresnet50.in1k")
    assert hub.resolve("resnet50")[0] == "resnet50.a1_in1k"
    with pytest.raises(hub.HubError, match="no pretrained tag 'nope'; its tags: .*tv_in1k"):
        hub.resolve("resnet50.nope")
    with pytest.raises(hub.HubError, match="no pretrained weights known for 'vit_base'"):
        hub.resolve("vit_base")


@pytest.fixture(scope="module")
def reference():
    """(timm model, its model.safetensors bytes): random weights, BatchNorm statistics set."""
    from safetensors.numpy import save
    from test_weights import random_timm, state_dict

    model = random_timm(NAME.split(".")[0], seed=4)
    return model, save(state_dict(model))


@pytest.fixture
def loopback(reference, tmp_path, monkeypatch):
    """The hub at 127.0.0.1 serving NAME, an empty cache; huggingface_hub pointed at both (in
    this process by monkeypatching its settings, in subprocesses by its own variables)."""
    from huggingface_hub import constants

    server = HubServer({(HUB_REPO, hub.WEIGHTS_FILE): reference[1]})
    known = hub.table()["weights"]
    entry = {k: v for k, v in known[NAME].items() if k != "url"}
    monkeypatch.setitem(known, NAME, {**entry, "hf_hub_id": HUB_REPO})
    cache = str(tmp_path / "hf_cache")
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        server.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", cache)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hidden = tmp_path / "hide_torch"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text(HIDE_TORCH + PATCH_FACTS)
    server.env = {
        **os.environ,
        "HF_ENDPOINT": server.url,
        "HF_HUB_CACHE": cache,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": os.pathsep.join([str(hidden), REPO]),
    }
    server.env.pop("HF_HUB_OFFLINE", None)
    yield server
    server.close()


def timm_logits(model, x_nhwc):
    with torch.no_grad():
        return model(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())).numpy()


def max_relative_difference(ours, ref):
    return float(np.abs(np.asarray(ours) - ref).max() / np.abs(ref).max())


def test_download_converts_to_timms_logits_and_load_uses_their_preprocessing(
    loopback, reference, tmp_path, capsys
):
    out = str(tmp_path / "model")
    assert weights.main(["--timm", "legacy_seresnet18", "--out", out]) == 0
    with open(os.path.join(out, "model.json")) as f:
        meta = json.load(f)
    assert meta["source"] == {"timm": NAME, "hf_hub_id": "timm/" + NAME}
    assert meta["preprocessing"]["resize_size"] == 256 and meta["class_names"][1] == (
        "goldfish, Carassius auratus"
    )
    x = np.random.RandomState(0).randn(2, 64, 64, 3).astype(np.float32)
    model, variables, _ = weights.load_pretrained(out)
    ref = timm_logits(reference[0], x)
    assert max_relative_difference(model.apply(variables, x, train=False), ref) < 1e-4

    for source in ("timm:legacy_seresnet18", out):
        trained = inference.load(source)
        assert trained.class_names[0] == "tench, Tinca tinca" and trained.image_size == 224
        assert max_relative_difference(trained.apply_normalised(x)[0], ref) < 1e-4
        # A 300 x 400 photo: shorter side to 256 (bicubic), centre 224 crop, their mean/std.
        photo = np.random.RandomState(1).randint(0, 256, (300, 400, 3), np.uint8)
        pre = trained.preprocess(photo)
        assert pre.shape == (1, 224, 224, 3)
        mean = np.asarray(meta["preprocessing"]["mean"]) * 255
        assert (
            abs(
                float(pre[..., 0].mean())
                - (photo[38:262, 58:282, 0].mean() - mean[0]) / (0.229 * 255)
            )
            < 0.05
        )


def test_an_interrupted_download_resumes_and_the_cache_serves_a_second_call(
    loopback, reference, tmp_path
):
    loopback.drop_at = 25_000_000  # past huggingface_hub's 10 MB write chunks: some are kept
    path = hub.download("timm:legacy_seresnet18")
    with open(path, "rb") as f:
        assert f.read() == reference[1]
    first, second = [r[2] for r in loopback.gets()]
    resumed_at = int(second.removeprefix("bytes=").removesuffix("-"))
    assert first is None and 0 < resumed_at <= 25_000_000
    loopback.close()  # no hub any more: the cache answers
    assert hub.download("legacy_seresnet18.in1k") == path
    proc = subprocess.run(
        [sys.executable, "-m", "senet_jax.weights", "--timm", NAME, "--out", str(tmp_path / "d")],
        env=loopback.env,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert os.path.isfile(tmp_path / "d" / "model.json")


def run_weights_command(env, out, name=NAME):
    code = (
        "import sys\n"
        "from senet_jax import weights\n"
        "status = weights.main(sys.argv[1:])\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'imported'\n"
        "sys.exit(status)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "--timm", name, "--out", out],
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_hub_path_imports_no_torch(loopback, tmp_path):
    out = str(tmp_path / "model")
    proc = run_weights_command(loopback.env, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"wrote {out}: se_resnet18, 11,778,592 parameters")


def test_no_weights_no_hub_or_offline_is_one_line_naming_the_checkpoint_way_out(loopback, tmp_path):
    closed = HubServer({})
    closed.close()
    cases = {
        "404": (loopback.env, "seresnet50", "the hub has no timm/seresnet50.a1_in1k"),
        "unreachable": ({**loopback.env, "HF_ENDPOINT": closed.url}, NAME, "cannot be reached"),
        "offline": ({**loopback.env, "HF_HUB_OFFLINE": "1"}, NAME, "HF_HUB_OFFLINE"),
    }
    for case, (env, name, reason) in cases.items():
        out = tmp_path / f"out_{case}"
        proc = run_weights_command(env, str(out), name)
        assert proc.returncode == 2, (case, proc.stderr[-2000:])
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
        assert reason in proc.stderr and "--checkpoint FILE" in proc.stderr, proc.stderr
        assert not out.exists(), case
    assert not any(p for p in loopback.gets())  # nothing was downloaded by any of them


def test_init_from_timm_is_checked_against_config_model_before_any_download():
    from configs import stl10_finetune
    from senet_jax import config as config_lib

    config = stl10_finetune.get_config()
    assert config.init_from == "timm:seresnet50.a1_in1k"
    assert "hf_hub_id" in hub.resolve(config.init_from)[1]  # no torch needed for it
    config_lib.validate(config, device_count=8)  # no network: the names and options only
    for field, value, needs in (
        ("stride_in_1x1", True, "model.stride_in_1x1=False"),
        ("stem_pool", "ceil", "model.stem_pool='pad'"),
        ("name", "se_resnet101", "is a se_resnet50"),
    ):
        wrong = config.copy_and_resolve_references()
        wrong.model[field] = value
        with pytest.raises(config_lib.ConfigError, match=needs):
            config_lib.validate(wrong, device_count=8)
    wrong = config.copy_and_resolve_references()
    wrong.model.se.min_features = 1
    with pytest.raises(config_lib.ConfigError, match=r"model\.se\.min_features=8"):
        config_lib.validate(wrong, device_count=8)
    wrong.init_from = "timm:seresnet50.nope"
    with pytest.raises(config_lib.ConfigError, match="no pretrained tag 'nope'"):
        config_lib.validate(wrong, device_count=8)


def test_a_pth_name_is_fetched_from_its_address_checked_and_read_with_torch(
    loopback, reference, tmp_path, monkeypatch
):
    import hashlib
    import io

    buffer = io.BytesIO()
    torch.save(reference[0].state_dict(), buffer)
    data = buffer.getvalue()
    good = f"seresnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    loopback.files[("releases", good)] = data
    loopback.files[("releases", "seresnet18-00000000.pth")] = data
    known = hub.table()["weights"]
    facts = {k: v for k, v in known[NAME].items() if k != "hf_hub_id"}
    url = f"{loopback.url}/releases/resolve/v0.1/{good}"
    monkeypatch.setitem(known, NAME, {**facts, "url": url})
    out = str(tmp_path / "model")
    assert weights.main(["--timm", NAME, "--out", out]) == 0
    with open(os.path.join(out, "model.json")) as f:
        assert json.load(f)["source"] == {"timm": NAME, "url": url}
    x = np.random.RandomState(2).randn(1, 64, 64, 3).astype(np.float32)
    trained = inference.load("timm:" + NAME)  # the cached file: no second download
    assert len(loopback.gets()) == 1
    ref = timm_logits(reference[0], x)
    assert max_relative_difference(trained.apply_normalised(x)[0], ref) < 1e-4

    bad = f"{loopback.url}/releases/resolve/v0.1/seresnet18-00000000.pth"
    monkeypatch.setitem(known, NAME, {**facts, "url": bad})
    with pytest.raises(hub.HubError, match="does not match the sha256 its name gives"):
        hub.download(NAME)
    assert sorted(os.listdir(tmp_path / "hf_cache" / hub.URL_CACHE)) == [good]  # bad one removed


def test_a_pth_name_without_torch_is_one_line_naming_the_extra_and_hub_hosted_names(
    loopback, tmp_path
):
    out = tmp_path / "out"
    proc = run_weights_command(loopback.env, str(out), "legacy_seresnet34")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "PyTorch .pth file" in proc.stderr and "senet-jax[convert]" in proc.stderr
    assert "seresnet50.a1_in1k" in proc.stderr
    assert not out.exists() and not loopback.requests


def test_an_option_the_config_leaves_out_is_checked_by_the_models_default():
    from configs import smoke
    from senet_jax import config as config_lib

    config = smoke.get_config()
    config.model.name, config.model.width_multiplier = "se_resnet18", 1.0
    config.init_from = "timm:" + NAME
    assert "branch_relu" not in config.model  # the model's default (False) would be trained
    with pytest.raises(config_lib.ConfigError, match="needs model.branch_relu=True"):
        config_lib.validate(config, device_count=8)
    config.model.branch_relu = True
    config_lib.validate(config, device_count=8)


def test_train_py_downloads_converts_and_fine_tunes_from_timm_name(
    loopback, tmp_path, compile_cache
):
    from training_runs import run_train

    workdir = tmp_path / "run"
    hub_settings = {k: loopback.env[k] for k in ("HF_ENDPOINT", "HF_HUB_CACHE", "PYTHONPATH")}
    proc = run_train(
        str(workdir),
        compile_cache,
        env_extra=hub_settings,  # torch hidden, as on a machine without it
        config="configs/stl10_finetune.py",
        init_from="timm:legacy_seresnet18",
        synthetic_stl10="(36,16)",  # 16 left to train on after validation: one batch of 16
        image_size=32,
        num_epochs=1,
        warmup_epochs=0,
        eval_every_epochs=1,
        **{  # legacy_seresnet18's network (config.validate says so otherwise)
            "model.name": "se_resnet18",
            "model.branch_relu": True,
            "model.stride_in_1x1": True,
            "model.stem_pool": "ceil",
            "model.se.min_features": 1,
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    directory = workdir / "pretrained" / NAME
    assert f"downloading timm weights {NAME} and converting them into {directory}" in proc.stderr
    assert f"starting from the weights in {directory}" in proc.stderr
    assert "new classifier head for 10 classes (the weights have 1000)" in proc.stderr
    assert len(loopback.gets()) == 1 and (directory / "model.json").is_file()
    with open(workdir / "results.json") as f:
        assert json.load(f)["test_examples"] == 16
