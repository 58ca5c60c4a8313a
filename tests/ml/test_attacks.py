"""PGD / FGSM: threat-model constraints, loss increase, L2 vs sign steps, no side effects."""

from __future__ import annotations

import pytest
import torch

from ml.attacks import L2Step, LinfStep, classification_loss, fgsm_attack, pgd_attack
from ml.models import DualBatchNorm2d, bn_route, create_model


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("resnet_tiny", 3, 1, dual_bn=True)


def _loss(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, route: str = "adv") -> float:
    m.eval()
    with torch.no_grad(), bn_route(m, route):
        return float(classification_loss(m(x), y, multilabel=False))


@pytest.mark.parametrize(("norm", "eps", "step"), [("linf", 0.03, 0.01), ("l2", 0.5, 0.15)])
def test_pgd_stays_in_ball_and_unit_box_and_raises_loss(
    model: torch.nn.Module, norm: str, eps: float, step: float
) -> None:
    x = torch.rand(6, 1, 32, 32)
    x[:, :, :4] = 0.0  # pixels at the box edge must stay inside [0, 1]
    x[:, :, -4:] = 1.0
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    adv = pgd_attack(model, x, y, eps=eps, step_size=step, steps=5, norm=norm)
    delta = (adv - x).flatten(1)
    if norm == "linf":
        assert float(delta.abs().max()) <= eps + 1e-6
    else:
        assert float(delta.norm(dim=1).max()) <= eps + 1e-5
        assert float(delta.norm(dim=1).min()) > 0.5 * eps  # it actually moved
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    assert _loss(model, adv, y) > _loss(model, x, y) + 1e-3


def test_l2_step_follows_normalised_gradient_not_sign() -> None:
    x = torch.full((1, 1, 2, 2), 0.5)
    grad = torch.tensor([[[[3.0, 4.0], [0.0, 0.0]]]])
    l2 = L2Step(x, eps=10.0, step_size=1.0).step(x, grad)
    np_expected = x + torch.tensor([[[[0.6, 0.8], [0.0, 0.0]]]])
    assert torch.allclose(l2, np_expected)
    linf = LinfStep(x, eps=10.0, step_size=1.0).step(x, grad)
    assert torch.allclose(linf, x + torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]]))
    # Projection: L2 scales the whole perturbation back onto the sphere.
    far = x + torch.tensor([[[[0.3, 0.4], [0.0, 0.0]]]])
    proj = L2Step(x, eps=0.25, step_size=1.0).project(far)
    assert torch.allclose((proj - x).flatten().norm(), torch.tensor(0.25))
    assert torch.allclose(proj - x, (far - x) * 0.5)


def test_attack_leaves_model_untouched(model: torch.nn.Module) -> None:
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 2, 0])
    pgd_attack(model, x, y, eps=0.03, step_size=0.01, steps=3)
    assert model.training  # mode restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # no BN statistics moved (eval mode)
    assert all(p.grad is None for p in model.parameters())  # no weight gradients
    layer = next(m for m in model.modules() if isinstance(m, DualBatchNorm2d))
    assert layer.route == "clean"  # route restored


def test_route_matters_and_is_adv_by_default(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if ".bns.1.running_var" in name:
                buf.fill_(4.0)
    x, y = torch.rand(3, 1, 32, 32), torch.tensor([0, 1, 2])
    torch.manual_seed(5)
    default = pgd_attack(model, x, y, eps=0.03, step_size=0.01, steps=2, random_start=False)
    adv = pgd_attack(
        model, x, y, eps=0.03, step_size=0.01, steps=2, random_start=False, route="adv"
    )
    clean = pgd_attack(
        model, x, y, eps=0.03, step_size=0.01, steps=2, random_start=False, route="clean"
    )
    assert torch.equal(default, adv) and not torch.equal(adv, clean)


def test_fgsm_random_start_and_multilabel_bce() -> None:
    torch.manual_seed(0)
    m = create_model("resnet_tiny", 4, 1)
    x = torch.rand(5, 1, 32, 32)
    y = torch.tensor([[1.0, 0.0, -1.0, 1.0]] * 5)  # -1 = ignored label
    adv = fgsm_attack(m, x, y, eps=0.02, multilabel=True)
    assert float((adv - x).abs().max()) <= 0.02 + 1e-6
    m.eval()
    with torch.no_grad():
        assert float(classification_loss(m(adv), y, True)) > float(
            classification_loss(m(x), y, True)
        )
    # The ignored column gets no gradient from the loss.
    logits = torch.zeros(1, 4, requires_grad=True)
    classification_loss(logits, y[:1], True).backward()
    assert logits.grad is not None and float(logits.grad[0, 2]) == 0.0
    assert torch.equal(pgd_attack(m, x, y, eps=0.0, step_size=0.1, steps=3, multilabel=True), x)
