"""Elastic ViT family: spec text/JSON, nesting, supernet-vs-static parity, cost model, slicing."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from seekdeploy.errors import SpecError
from seekdeploy.nn import (
    config_from_json, create_supernet, default_pair, estimate_cost, list_families, parse_spec,
    reorganize_channels, spec_from_json, to_static,
)
from seekdeploy.nn.families._vit_static import build_static
from seekdeploy.nn.families.vit import Pooling, ViTConfig, ViTSpec

IMAGE, CHANNELS, CLASSES = 32, 3, 10
STOCK_LEAVES = (nn.Conv2d, nn.LayerNorm, nn.Linear, nn.GELU)


def _random_specs(config: ViTConfig, count: int, seed: int = 0) -> list[ViTSpec]:
    """`count` distinct random subnets of `config` (heads, depth, MLP hidden units vary)."""
    rng, specs = random.Random(seed), []
    while len(specs) < count:
        heads = rng.randint(1, config.heads)
        width = heads * config.head_dim
        ratio = rng.choice([r for r in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
                            if r * width <= config.max_spec().mlp_hidden])
        spec = ViTSpec(width, heads, rng.randint(1, config.depth), ratio,
                       config.patch_size, config.pooling)
        if spec not in specs:
            specs.append(spec)
    return specs


def _smallest(config: ViTConfig) -> ViTSpec:
    return ViTSpec(config.head_dim, 1, 1, 1 / config.head_dim, config.patch_size, config.pooling)


@pytest.fixture(scope="module", params=[Pooling.CLS, Pooling.MEAN], ids=["cls", "mean"])
def supernet(request):
    torch.manual_seed(0)
    config = ViTConfig(pooling=request.param)
    net = create_supernet("vit", config, num_classes=CLASSES, in_channels=CHANNELS, image_size=IMAGE)
    with torch.no_grad():  # break the near-uniform init so every slice matters
        for param in net.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return net.eval()


def _all_specs(net) -> list[ViTSpec]:
    config = net.config
    count = 20 if config.pooling is Pooling.CLS else 6
    return [_smallest(config), config.max_spec(), *_random_specs(config, count)]


# --------------------------------------------------------------------------- specs


def test_family_is_registered_with_default_pair():
    config, base, motivated = default_pair("vit")
    assert "vit" in list_families()
    assert (base.embed_dim, base.heads, base.depth, base.mlp_hidden) == (48, 2, 2, 96)
    assert motivated == config.max_spec() == ViTSpec(96, 4, 4, 2.0)
    assert base.head_dim == motivated.head_dim == 24
    assert motivated.contains(base) and not base.contains(motivated)


def test_text_json_round_trip():
    spec = parse_spec("vit", "vit:embed=96;heads=4;depth=4;mlp=2")
    assert spec == ViTSpec(96, 4, 4, 2.0)
    assert spec.to_text() == "vit:embed=96;heads=4;depth=4;mlp=2"
    assert parse_spec(None, spec.to_text()) == spec
    assert parse_spec("vit", "heads=2; embed_dim=48 ;mlp_ratio=1.5;depth=3") == ViTSpec(48, 2, 3, 1.5)
    odd = ViTSpec(48, 2, 3, 1.5, patch_size=8, pooling=Pooling.MEAN)
    assert odd.to_text() == "vit:embed=48;heads=2;depth=3;mlp=1.5;patch=8;pool=mean"
    assert parse_spec(None, odd.to_text()) == odd
    assert spec_from_json(odd.to_json()) == odd
    assert odd.to_json() == {"family": "vit", "embed_dim": 48, "heads": 2, "depth": 3,
                             "mlp_ratio": 1.5, "patch_size": 8, "pooling": "mean"}
    config = ViTConfig(embed_dim=64, heads=2, depth=3, mlp_ratio=3, patch_size=8)
    assert config_from_json(config.to_json()) == config


@pytest.mark.parametrize("text, message", [
    ("vit:embed=96;heads=5;depth=4;mlp=2", "not divisible by heads"),
    ("vit:embed=96;heads=4;depth=0;mlp=2", "integers >= 1"),
    ("vit:embed=96;heads=4;depth=4;mlp=0.01", "whole number of MLP hidden units"),
    ("vit:embed=96;heads=4;depth=4;mlp=-1", "positive number"),
    ("vit:embed=96;heads=4;depht=4;mlp=2", "did you mean 'depth'"),
    ("vit:embed=96;heads=4;depth=4", "missing mlp_ratio"),
    ("vit:embed=96;heads=4;depth=four;mlp=2", "'depth'"),
    ("vit:embed=96;heads=4;depth=4;mlp=2;pool=mena", "did you mean 'mean'"),
    ("vit:embed=96;embed_dim=96;heads=4;depth=4;mlp=2", "twice"),
    ("vit:embed=96;heads=4;depth=4;mlp", "not 'key=value'"),
])
def test_bad_spec_text_is_a_spec_error(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec("vit", text)


def test_contains_is_prefix_nesting():
    big = ViTSpec(96, 4, 4, 2.0)
    assert big.contains(big)
    assert big.contains(ViTSpec(48, 2, 2, 4.0))  # 192 hidden units fit in 192
    assert not big.contains(ViTSpec(48, 2, 2, 4.5))  # 216 units do not
    assert not big.contains(ViTSpec(64, 4, 2, 1.0))  # head dim 16, not 24
    assert not big.contains(ViTSpec(48, 2, 5, 1.0))  # too deep
    assert not big.contains(ViTSpec(48, 2, 2, 1.0, patch_size=8))
    assert not big.contains(ViTSpec(48, 2, 2, 1.0, pooling=Pooling.MEAN))


def test_supernet_rejects_specs_it_cannot_run(supernet):
    x = torch.zeros(1, CHANNELS, IMAGE, IMAGE)
    with pytest.raises(SpecError, match="use embed = heads x 24"):
        supernet(x, ViTSpec(32, 2, 1, 1.0, pooling=supernet.config.pooling))
    with pytest.raises(SpecError, match="does not fit"):
        supernet(x, ViTSpec(120, 5, 1, 1.0, pooling=supernet.config.pooling))
    with pytest.raises(SpecError, match="multiple of the patch size"):
        create_supernet("vit", ViTConfig(), num_classes=3, in_channels=1, image_size=30)


# --------------------------------------------------------------------------- slicing


def test_to_static_matches_supernet_for_smallest_largest_and_random_specs(supernet):
    torch.manual_seed(1)
    x = torch.randn(3, CHANNELS, IMAGE, IMAGE)
    with torch.no_grad():
        for spec in _all_specs(supernet):
            static = to_static(supernet, spec)
            expected = supernet(x, spec, bn_role="motivated")
            diff = (static(x) - expected).abs().max().item()
            assert diff <= 1e-5, f"{spec}: max abs diff {diff}"
            assert torch.equal(supernet(x, spec, bn_role="base"), expected)  # no BN: role is moot


def test_cost_model_params_and_flops_are_exact(supernet):
    x = torch.randn(1, CHANNELS, IMAGE, IMAGE)
    for spec in _all_specs(supernet):
        static = to_static(supernet, spec)
        cost = estimate_cost(spec, in_channels=CHANNELS, image_size=IMAGE, num_classes=CLASSES)
        assert cost.params == sum(p.numel() for p in static.parameters()), spec
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            static(x)
        assert cost.flops == counter.get_total_flops() == 2 * cost.macs, spec
        assert cost.weight_bytes("fp16") == 2 * cost.params
        assert 0 < cost.peak_activation_bytes < cost.activation_bytes


def test_cost_grows_with_every_elastic_dimension():
    def flops(spec):
        return estimate_cost(spec, in_channels=CHANNELS, image_size=IMAGE, num_classes=CLASSES).flops
    base = ViTSpec(48, 2, 2, 2.0)
    for bigger in (ViTSpec(72, 3, 2, 2.0), ViTSpec(48, 2, 3, 2.0), ViTSpec(48, 2, 2, 3.0)):
        assert flops(bigger) > flops(base)


def test_slice_map_covers_every_tensor_and_static_holds_exact_slices(supernet):
    spec = _random_specs(supernet.config, 1, seed=7)[0]
    regions = supernet.slice_map(spec)
    tensors = dict(supernet.named_parameters()) | dict(supernet.named_buffers())
    assert set(regions) == set(tensors)
    static_state = to_static(supernet, spec).state_dict()
    used = {name for name, region in regions.items() if region is not None}
    assert used == set(static_state)
    for name in used:
        assert torch.equal(static_state[name], tensors[name][regions[name]]), name
        assert static_state[name].data_ptr() != tensors[name].data_ptr()  # a copy, not a view
    unused_blocks = {name for name in tensors if name.startswith(f"blocks.{spec.depth}.")}
    assert all(regions[name] is None for name in unused_blocks)


def test_base_step_changes_only_the_base_slice(supernet):
    base = ViTSpec(48, 2, 2, 2.0, pooling=supernet.config.pooling)
    supernet.zero_grad(set_to_none=True)
    loss = supernet(torch.randn(2, CHANNELS, IMAGE, IMAGE), base).square().sum()
    loss.backward()
    for name, param in supernet.named_parameters():
        region = supernet.slice_map(base)[name]
        if region is None:
            assert param.grad is None or not param.grad.any(), name
            continue
        outside = param.grad.clone()
        outside[region] = 0
        assert not outside.any(), f"{name} has gradient outside its slice"
    supernet.zero_grad(set_to_none=True)


def test_static_model_is_stock_layers_like_a_hand_built_one(supernet):
    spec = ViTSpec(72, 3, 3, 1.5, pooling=supernet.config.pooling)
    static = to_static(supernet, spec)
    hand = build_static(spec, num_classes=CLASSES, in_channels=CHANNELS, image_size=IMAGE)
    leaves = [m for m in static.modules() if not list(m.children())]
    assert leaves and all(isinstance(m, STOCK_LEAVES) for m in leaves)
    assert repr(static) == repr(hand)
    assert {k: v.shape for k, v in static.state_dict().items()} == {
        k: v.shape for k, v in hand.state_dict().items()}
    static.train()
    static(torch.randn(2, CHANNELS, IMAGE, IMAGE)).sum().backward()
    assert all(p.grad is not None and p.grad.any() for p in static.parameters())  # none unused


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
def test_static_model_exports_to_onnx_and_runs_in_onnxruntime(tmp_path, supernet):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    spec = ViTSpec(48, 2, 2, 2.0, pooling=supernet.config.pooling)
    static = to_static(supernet, spec)
    path = tmp_path / "vit.onnx"
    x = torch.randn(2, CHANNELS, IMAGE, IMAGE)
    torch.onnx.export(static, (x,), str(path), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"Conv", "MatMul", "Softmax"} <= ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x5 = torch.randn(5, CHANNELS, IMAGE, IMAGE)
    (logits,) = session.run(None, {"input": x5.numpy()})
    with torch.no_grad():
        assert abs(logits - static(x5).numpy()).max() <= 1e-5


def test_reorganize_channels_sorts_heads_and_units_and_keeps_function():
    torch.manual_seed(3)
    net = create_supernet("vit", ViTConfig(), num_classes=CLASSES, in_channels=CHANNELS,
                          image_size=IMAGE).eval()
    with torch.no_grad():
        for param in net.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    x = torch.randn(2, CHANNELS, IMAGE, IMAGE)
    with torch.no_grad():
        before = net(x)
        fc1_before = net.blocks[0].fc1.weight.clone()
        reorganize_channels(net)
        assert not torch.equal(fc1_before, net.blocks[0].fc1.weight)  # something moved
        after = net(x)
    assert (after - before).abs().max().item() <= 1e-5
    for block in net.blocks:
        heads = block.attn.proj.weight.abs().sum(0).view(-1, 24).sum(1)
        units = block.fc2.weight.abs().sum(0)
        assert torch.all(heads[:-1] >= heads[1:]) and torch.all(units[:-1] >= units[1:])
