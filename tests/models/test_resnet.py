"""ResNet family: exact sizes (issue 13 and timm), the SE ablation options, the variants."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from senet_jax import weights
from senet_jax.models import create_model, list_models
from senet_jax.models.ops.conv import Conv
from senet_jax.models.ops.depthwise import DepthwiseConv
from senet_jax.models.resnet import STAGE_NAMES
from senet_jax.models.summary import summarize


def init_shapes(model, image_size=224):
    x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


def param_count(model, image_size=224):
    params = init_shapes(model, image_size)["params"]
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def timm_param_count(name):
    """timm's count, built on the meta device: no memory, no weights, no download."""
    weights.allow_torch_beside_tensorflow()  # another test module may have loaded TensorFlow
    timm = pytest.importorskip("timm")
    model = timm.create_model(name, pretrained=False, device="meta")
    return sum(p.numel() for p in model.parameters())


# (ours, timm 1.0.31 twin, parameters at 224x224 with 1000 classes, from issue 13)
COUNTS = [
    ("resnet18", "resnet18", 11_689_512),
    ("resnet34", "resnet34", 21_797_672),
    ("resnet50", "resnet50", 25_557_032),
    ("resnet101", "resnet101", 44_549_160),
    ("resnet152", "resnet152", 60_192_808),
    ("se_resnet18", "legacy_seresnet18", 11_778_592),
    ("se_resnet34", "legacy_seresnet34", 21_958_868),
    ("se_resnet50", "legacy_seresnet50", 28_088_024),
    ("se_resnet101", "legacy_seresnet101", 49_326_872),
    ("se_resnet152", "legacy_seresnet152", 66_821_848),
    ("resnext50_32x4d", "resnext50_32x4d", 25_028_904),
    ("resnext101_32x4d", "resnext101_32x4d", None),
    ("se_resnext26_32x4d", "legacy_seresnext26_32x4d", None),
    ("se_resnext50_32x4d", "legacy_seresnext50_32x4d", 27_559_896),
    ("se_resnext101_32x4d", "legacy_seresnext101_32x4d", 48_955_416),
    ("senet154", "legacy_senet154", 115_088_984),
]


def test_registry_has_the_family():
    assert {name for name, _, _ in COUNTS} <= set(list_models())


@pytest.mark.parametrize("name,timm_name,expected", COUNTS)
def test_parameter_counts_match_the_issue_and_timm(name, timm_name, expected):
    ours = param_count(create_model(name, num_classes=1000))
    if expected is not None:
        assert ours == expected
    assert ours == timm_param_count(timm_name)


@pytest.mark.parametrize(
    "se,expected",
    [
        ({"reduction": 4}, 35_635_688),
        ({"reduction": 8}, 30_603_912),
        ({"reduction": 16}, 28_088_024),
        ({"reduction": 32}, 26_830_080),
        ({"placement": "conv3x3"}, 25_718_228),  # paper Table 15: SE on the 3x3
    ],
)
def test_se_resnet50_ablation_sizes(se, expected):
    assert param_count(create_model("se_resnet50", num_classes=1000, se=se)) == expected


SMALL = dict(num_classes=10, width_multiplier=0.25)


def se_widths(name, image_size=32, **options):
    """{unit: channels SE scales} for a small model."""
    params = init_shapes(create_model(name, **{**SMALL, **options}), image_size)["params"]
    return {k: v["se"]["expand"]["bias"].shape[0] for k, v in params.items() if "se" in v}


def test_placements_put_se_where_the_paper_does():
    # width 0.25: conv2_x has 16 planes -> 16-wide 3x3, 64 output channels; its input is 16.
    assert se_widths("se_resnet50")["conv2_1"] == 64
    assert se_widths("se_resnet50", se={"placement": "post"})["conv2_1"] == 64
    assert se_widths("se_resnet50", se={"placement": "identity"})["conv2_1"] == 64
    assert se_widths("se_resnet50", se={"placement": "pre"})["conv2_1"] == 16
    assert se_widths("se_resnet50", se={"placement": "pre"})["conv2_2"] == 64
    assert se_widths("se_resnet50", se={"placement": "conv3x3"})["conv2_1"] == 16
    x = jnp.ones((2, 32, 32, 3))
    outputs = set()
    for placement in ("standard", "pre", "post", "identity", "conv3x3"):
        # One unit per stage keeps this quick; the unit is the same.
        model = create_model(
            "se_resnet50", **SMALL, stage_sizes=(1, 1, 1, 1), se={"placement": placement}
        )
        variables = model.init(jax.random.key(0), x)
        y = model.apply(variables, jax.random.normal(jax.random.key(1), x.shape))
        assert y.shape == (2, 10) and bool(jnp.all(jnp.isfinite(y)))
        outputs.add(float(y[0, 0]))
    assert len(outputs) == 5


@pytest.mark.parametrize(
    "name,placement", [("se_resnet18", "conv3x3"), ("se_resnet50", "after_relu")]
)
def test_a_placement_the_model_lacks_is_a_value_error(name, placement):
    model = create_model(name, **SMALL, se={"placement": placement})
    with pytest.raises(ValueError, match=rf"'{placement}'.*standard.*identity"):
        init_shapes(model, 32)


@pytest.mark.parametrize("blocks", [["conv4_x"], [4], ("conv4_x", "conv5_x")])
def test_se_blocks_select_stages_by_name_or_number(blocks):
    with_se = se_widths("se_resnet18", se={"blocks": blocks})
    expected = {
        f"conv{s}_{i}" for s in (4, 5) if f"conv{s}_x" in blocks or s in blocks for i in (1, 2)
    }
    assert set(with_se) == expected
    with pytest.raises(ValueError, match="conv2_x"):
        se_widths("se_resnet18", se={"blocks": ["stage4"]})
    assert STAGE_NAMES == ("conv2_x", "conv3_x", "conv4_x", "conv5_x")


# timm 1.0.31's resnet50 with block_args=dict(attn_layer=KIND) (issue 23); GE follows the
# paper (timm's fails to build), its GE-theta-minus has no parameters.
ATTENTION_COUNTS = [
    ("se", "se", 28_088_024),
    ("eca", "eca", 25_557_118),
    ("cbam", "cbam", 28_073_576),
    ("ese", "ese", 45_691_688),
    ("ge", None, 25_557_032),
]


@pytest.mark.parametrize("kind,timm_kind,expected", ATTENTION_COUNTS)
def test_se_resnet50_attention_kind_sizes(kind, timm_kind, expected):
    ours = param_count(create_model("se_resnet50", num_classes=1000, se={"kind": kind}))
    assert ours == expected
    if timm_kind is not None:
        weights.allow_torch_beside_tensorflow()
        timm = pytest.importorskip("timm")
        twin = timm.create_model(
            "resnet50", pretrained=False, device="meta", block_args=dict(attn_layer=timm_kind)
        )
        assert ours == sum(p.numel() for p in twin.parameters())


def test_cifar_stem_is_the_cifar_resnet():
    # kuangliu/timm's CIFAR ResNet-18: 11,173,962 parameters with 10 classes.
    cifar = dict(num_classes=10, stem="cifar", stem_strides=1)
    assert param_count(create_model("resnet18", **cifar), 32) == 11_173_962
    assert param_count(create_model("se_resnet18", **cifar), 32) == 11_263_042
    assert create_model("resnet18", **cifar).total_stride() == 8
    assert final_map("resnet18", 32, width_multiplier=1.0, stem="cifar", stem_strides=1) == (
        1,
        4,
        4,
        512,
    )
    with pytest.raises(ValueError, match=r"stem='cifar10'.*cifar"):
        init_shapes(create_model("resnet18", stem="cifar10"), 32)


def test_plain_resnets_ignore_se_options():
    assert param_count(create_model("resnet18", se={"reduction": 4}), 32) == param_count(
        create_model("resnet18"), 32
    )


def final_map(name, image_size, **options):
    model = create_model(name, **{**SMALL, **options})
    x = jnp.zeros((1, image_size, image_size, 3))
    _, state = jax.eval_shape(
        lambda x: model.apply(
            model.init(jax.random.key(0), x),
            x,
            capture_intermediates=True,
            mutable=["intermediates"],
        ),
        x,
    )
    return state["intermediates"]["conv5_2"]["__call__"][0].shape


def test_stem_strides_one_is_the_small_image_stem():
    assert create_model("resnet18").total_stride() == 32
    assert create_model("resnet18", stem_strides=1).total_stride() == 16
    assert final_map("resnet18", 96) == (1, 3, 3, 128)
    assert final_map("resnet18", 96, stem_strides=1) == (1, 6, 6, 128)
    assert param_count(create_model("resnet18", stem_strides=1), 32) == param_count(
        create_model("resnet18"), 32
    )


def test_stride_in_1x1_moves_the_stride_not_the_parameters():
    x = jnp.zeros((1, 64, 64, 3))

    def conv1_out(stride_in_1x1):
        model = create_model("se_resnet50", **SMALL, stride_in_1x1=stride_in_1x1)
        _, state = jax.eval_shape(
            lambda x: model.apply(
                model.init(jax.random.key(0), x),
                x,
                capture_intermediates=True,
                mutable=["intermediates"],
            ),
            x,
        )
        return state["intermediates"]["conv3_1"]["conv1"]["__call__"][0].shape

    assert conv1_out(True)[1:3] == (8, 8) and conv1_out(False)[1:3] == (16, 16)


@pytest.mark.parametrize("size", [7, 8])
def test_same_padding_matches_flax_same(size):
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(2, size, size, 4).astype(np.float32))
    ref = nn.Conv(6, (3, 3), strides=(2, 2), padding="SAME", use_bias=False)
    params = ref.init(jax.random.key(0), x)
    for implementation in ("onednn", "matmul", "native"):
        ours = Conv(6, (3, 3), (2, 2), implementation=implementation, padding="same")
        np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), atol=1e-5)
    ref = nn.Conv(4, (3, 3), strides=(2, 2), padding="SAME", feature_group_count=4, use_bias=False)
    params = ref.init(jax.random.key(0), x)
    for implementation in ("grouped", "shift_add_vjp"):
        ours = DepthwiseConv(strides=(2, 2), implementation=implementation, padding="same")
        np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), atol=1e-5)


def test_grouped_conv_matches_flax():
    x = jnp.asarray(np.random.RandomState(0).randn(2, 8, 8, 16).astype(np.float32))
    ref = nn.Conv(32, (3, 3), padding=((1, 1), (1, 1)), feature_group_count=8, use_bias=False)
    params = ref.init(jax.random.key(0), x)
    ours = Conv(32, (3, 3), feature_group_count=8)
    np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), atol=1e-5)


def test_a_training_step_runs_and_updates_batch_stats():
    model = create_model(
        "se_resnext26_32x4d", num_classes=10, width_multiplier=0.5, stage_sizes=(1, 1, 1, 1)
    )
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    variables = model.init(jax.random.key(0), x)

    def loss(params):
        logits, new = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            x,
            train=True,
            mutable=["batch_stats"],
        )
        return jnp.mean(logits**2), new

    grads, new = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    changed = jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"], new["batch_stats"]
    )
    assert all(jax.tree.leaves(changed))


@pytest.mark.parametrize(
    "name,paper_gflops",
    [("resnet50", 3.86), ("se_resnet50", 3.87), ("se_resnext50_32x4d", 4.25), ("senet154", 20.7)],
)
def test_multiply_adds_match_the_paper_within_one_percent(name, paper_gflops):
    # Hu et al., Table 2 (224x224, single crop).
    total = sum(r.mult_adds for r in summarize(create_model(name), 224))
    assert abs(total / 1e9 - paper_gflops) / paper_gflops < 0.01
