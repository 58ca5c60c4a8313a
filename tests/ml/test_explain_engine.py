"""compute_saliency: faithful to Captum and to autograd, batch-invariant, route-aware, safe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from captum.attr import Saliency
from torch import nn

from ml.explain import METHODS, auto_chunk_size, compute_saliency
from ml.models import bn_route, create_model

CLASSES = ["normal", "lesion", "other"]
# Small settings per method keep each test well under a second on 2 CPU cores.
FAST = {
    "smoothgrad": {"samples": 3},
    "integrated_gradients": {"steps": 6},
    "occlusion": {"window": 8, "stride": 8},
}


def _model(dual_bn: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("resnet_tiny", num_classes=3, in_channels=1, dual_bn=dual_bn)
    # Non-trivial running statistics, different on the two BN routes.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 1, 32, 32))
        if dual_bn:
            with bn_route(model, "adv"):
                for _ in range(3):
                    model(torch.rand(8, 1, 32, 32) ** 3)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest single-threaded; two threads spin on a shared 2-core box."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(5, 1, 32, 32)


def test_gradient_equals_captum_saliency_and_autograd(inputs: torch.Tensor) -> None:
    model = _model()
    res = compute_saliency(model, inputs, method="gradient", class_names=CLASSES)

    with torch.no_grad():
        pred = model(inputs).argmax(1)
    captum = Saliency(model).attribute(inputs.clone().requires_grad_(), target=pred, abs=True)
    captum = captum.amax(1)

    x = inputs.clone().requires_grad_()
    logits = model(x)
    (grad,) = torch.autograd.grad(logits.gather(1, pred[:, None]).sum(), x)
    manual = grad.abs().amax(dim=1)

    assert res.maps.shape == (5, 32, 32) and res.maps.dtype == torch.float32
    torch.testing.assert_close(res.maps, captum, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(res.maps, manual, rtol=1e-5, atol=1e-8)
    assert res.targets == [[int(p)] for p in pred]
    assert res.target_names == [CLASSES[int(p)] for p in pred]
    assert res.target_sources == ["predicted"] * 5
    torch.testing.assert_close(res.probs, model(inputs).softmax(1).detach())
    assert res.compute_ms > 0


@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_one_at_a_time(method: str, inputs: torch.Tensor) -> None:
    model = _model()
    params = FAST.get(method)
    batched = compute_saliency(model, inputs, method=method, params=params, max_batch=3)
    singles = [
        compute_saliency(model, inputs[i : i + 1], method=method, params=params, max_batch=1)
        for i in range(inputs.shape[0])
    ]
    assert batched.targets == [s.targets[0] for s in singles]
    if method == "smoothgrad":
        # Noise is seeded per call, not per image, so only the seeded call is reproducible.
        again = compute_saliency(model, inputs, method=method, params=params, max_batch=3)
        torch.testing.assert_close(batched.maps, again.maps)
        return
    torch.testing.assert_close(
        batched.maps, torch.cat([s.maps for s in singles]), rtol=1e-4, atol=1e-7
    )
    assert batched.maps.min() >= 0


@pytest.mark.parametrize("method", METHODS)
def test_route_changes_maps_and_keeps_bn_statistics(method: str, inputs: torch.Tensor) -> None:
    model = _model(dual_bn=True).train()  # caller's mode must come back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = FAST.get(method)
    clean = compute_saliency(model, inputs, method=method, route="clean", params=params)
    default = compute_saliency(model, inputs, method=method, params=params)
    adv = compute_saliency(model, inputs, method=method, route="adv", params=params)

    torch.testing.assert_close(clean.maps, default.maps)  # clean is the default route
    assert not torch.allclose(clean.maps, adv.maps)
    assert model.training
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), f"{key} changed"


def test_adv_route_on_standard_model_is_an_error(inputs: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="no dual batch norm"):
        compute_saliency(_model(), inputs, route="adv")


def test_targets_ground_truth_sum_and_named_class(inputs: torch.Tensor) -> None:
    model = _model()
    labels = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1], [0, 0, 1]])
    res = compute_saliency(model, inputs, target="ground_truth", labels=labels, class_names=CLASSES)
    pred = model(inputs).argmax(1)
    assert res.targets == [[0, 2], [1], [int(pred[2])], [0, 1, 2], [2]]
    assert res.target_sources[2] == "predicted_fallback"
    assert res.target_sources[0] == "ground_truth"
    assert res.target_names[0] == "normal+other"

    # Sum over positives equals the gradient of the summed logits.
    x = inputs[:1].clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(x)[0, [0, 2]].sum(), x)
    torch.testing.assert_close(res.maps[0], grad.abs().amax(1)[0], rtol=1e-5, atol=1e-8)

    named = compute_saliency(model, inputs, target="class:lesion", class_names=CLASSES)
    assert named.targets == [[1]] * 5 and named.target_names == ["lesion"] * 5
    assert named.target_sources == ["class"] * 5


def test_multilabel_probs_are_sigmoid(inputs: torch.Tensor) -> None:
    model = _model()
    res = compute_saliency(model, inputs, multilabel=True)
    torch.testing.assert_close(res.probs, torch.sigmoid(model(inputs)).detach())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inputs": torch.rand(2, 3, 32, 32)}, "3 channel.*expects 1"),
        ({"inputs": torch.rand(0, 1, 32, 32)}, "empty batch"),
        ({"inputs": torch.rand(1, 32, 32)}, "N×C×H×W"),
        ({"inputs": torch.rand(1, 1, 32, 32) * 255}, r"\[0, 1\]"),
        ({"target": "class:pneumonia"}, r"unknown class name 'pneumonia'.*'normal', 'lesion'"),
        ({"target": "top5"}, "unknown target"),
        ({"target": "ground_truth"}, "needs labels"),
        ({"method": "lime"}, "unknown saliency method"),
        ({"params": {"sample": 3}, "method": "smoothgrad"}, r"unknown parameter\(s\) \['sample'\]"),
    ],
)
def test_bad_inputs_give_clear_errors(kwargs: dict, message: str) -> None:
    args = {"inputs": torch.rand(2, 1, 32, 32), "class_names": CLASSES, **kwargs}
    x = args.pop("inputs")
    with pytest.raises(ValueError, match=message):
        compute_saliency(_model(), x, **args)


def test_large_batch_is_chunked_with_same_result() -> None:
    model = _model()
    torch.manual_seed(3)
    x = torch.rand(40, 1, 32, 32)
    auto = compute_saliency(model, x, method="gradient")
    chunked = compute_saliency(model, x, method="gradient", max_batch=7)
    torch.testing.assert_close(auto.maps, chunked.maps, rtol=1e-4, atol=1e-7)
    assert auto.logits.shape == (40, 3)


def test_chunk_size_follows_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.explain import engine

    model = _model()
    roomy = auto_chunk_size(model, (1, 32, 32), torch.device("cpu"))
    assert 1 <= roomy <= 64
    # With almost no free memory the engine degrades to one image per pass, not an OOM.
    monkeypatch.setattr(engine, "_free_bytes", lambda device: 1 << 16)
    assert auto_chunk_size(model, (1, 32, 32), torch.device("cpu")) == 1
    x = torch.rand(3, 1, 32, 32)
    torch.testing.assert_close(
        compute_saliency(model, x).maps, compute_saliency(model, x, max_batch=3).maps
    )
