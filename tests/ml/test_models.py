"""Model registry, input normalisation and dual batch norm routing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ml.models import (
    DualBatchNorm2d,
    bn_route,
    create_model,
    gradcam_layer,
    is_dual_bn,
    list_archs,
)


def test_registry_lists_required_archs() -> None:
    assert {"resnet18", "resnet34", "resnet50", "resnet_tiny"} <= set(list_archs())


@pytest.mark.parametrize("arch", ["resnet_tiny", "resnet18"])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_create_model_output_shape(arch: str, in_channels: int) -> None:
    model = create_model(arch, 4, in_channels).eval()
    with torch.no_grad():
        out = model(torch.rand(2, in_channels, 32, 32))
    assert out.shape == (2, 4)


def test_unknown_arch_and_bad_normalize_raise() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model("vgg0", 2)
    with pytest.raises(ValueError, match="one per channel"):
        create_model("resnet_tiny", 2, 3, normalize={"mean": [0.5], "std": [0.2]})


def test_normalize_inside_model_equals_manual_normalisation() -> None:
    norm = {"mean": [0.4], "std": [0.2]}
    plain = create_model("resnet_tiny", 2, 1).eval()
    normed = create_model("resnet_tiny", 2, 1, normalize=norm).eval()
    normed.load_state_dict(
        {
            **plain.state_dict(),
            **{k: v for k, v in normed.state_dict().items() if k.startswith("normalize.")},
        }
    )
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(normed(x), plain((x - 0.4) / 0.2), atol=1e-6)


def test_dual_bn_replaces_every_batchnorm_with_momentum() -> None:
    model = create_model("resnet18", 2, 1, dual_bn=True, bn_momentum=0.01)
    duals = [m for m in model.modules() if isinstance(m, DualBatchNorm2d)]
    plain = [
        m
        for m in model.modules()
        if isinstance(m, nn.BatchNorm2d) and not any(m is b for d in duals for b in d.bns)
    ]
    assert len(duals) == 20 and not plain
    assert all(bn.momentum == 0.01 for d in duals for bn in d.bns)
    assert is_dual_bn(model) and not is_dual_bn(create_model("resnet18", 2, 1))
    assert any(".bns.0." in k for k in model.state_dict())


def test_only_active_route_statistics_move() -> None:
    model = create_model("resnet_tiny", 2, 1, dual_bn=True).train()

    def stats(branch: int) -> dict[str, torch.Tensor]:
        tag = f".bns.{branch}.running_"
        return {k: v.clone() for k, v in model.state_dict().items() if tag in k}

    clean0, adv0 = stats(0), stats(1)
    with bn_route(model, "adv"):
        model(torch.rand(8, 1, 32, 32) + 0.5)
    assert all(torch.equal(v, clean0[k]) for k, v in stats(0).items())
    assert all(not torch.equal(v, adv0[k]) for k, v in stats(1).items())
    adv1 = stats(1)
    with bn_route(model, "clean"):
        model(torch.rand(8, 1, 32, 32))
    assert all(torch.equal(v, adv1[k]) for k, v in stats(1).items())
    assert all(not torch.equal(v, clean0[k]) for k, v in stats(0).items())


def test_routes_give_different_outputs_after_training_and_route_is_restored() -> None:
    model = create_model("resnet_tiny", 2, 1, dual_bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(3):
        with bn_route(model, "adv"):
            loss = model(torch.rand(8, 1, 32, 32) * 0.2).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        clean = model(x)
        with bn_route(model, "adv"):
            adv = model(x)
        again = model(x)
    assert not torch.allclose(clean, adv, atol=1e-4)
    assert torch.equal(clean, again)  # default route restored


def test_split_route_equals_two_routed_passes() -> None:
    from ml.models import split_route

    model = create_model("resnet_tiny", 3, 1, dual_bn=True).train()
    a, b = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32)
    ref = create_model("resnet_tiny", 3, 1, dual_bn=True).train()
    ref.load_state_dict(model.state_dict())
    with split_route(model, 4):
        joint = model(torch.cat([a, b]))
    with bn_route(ref, "clean"):
        ca = ref(a)
    with bn_route(ref, "adv"):
        cb = ref(b)
    assert torch.allclose(joint, torch.cat([ca, cb]), atol=1e-5)
    for (k, v), (_, w) in zip(model.state_dict().items(), ref.state_dict().items(), strict=True):
        assert torch.allclose(v.float(), w.float(), atol=1e-6), k


def test_bn_route_on_standard_model() -> None:
    model = create_model("resnet_tiny", 2, 1)
    with bn_route(model, "clean"):
        pass
    with pytest.raises(ValueError, match="no dual batch norm"), bn_route(model, "adv"):
        pass
    with pytest.raises(ValueError, match="unknown BN route"), bn_route(model, "both"):
        pass


def test_gradcam_layer_is_last_stage_and_hooks_see_route() -> None:
    model = create_model("resnet_tiny", 2, 1, dual_bn=True).eval()
    layer = gradcam_layer(model)
    assert layer is getattr(model.backbone, "layer4")  # noqa: B009
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        model(x)
        with bn_route(model, "adv"):
            model(x)
    handle.remove()
    assert seen[0].shape == (1, 64, 4, 4) and len(seen) == 2
    assert gradcam_layer(nn.DataParallel(model)) is layer
