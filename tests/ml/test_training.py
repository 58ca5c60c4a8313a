"""Training through the Python API: modes, logs, checkpoints, resume, fine-tuning, freezing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ml.checkpoint import load_checkpoint
from ml.models import bn_route
from ml.training import TrainConfig, train
from tests.ml.tiny_training import tiny_config


def test_standard_training_lowers_loss_and_writes_outputs(
    synthetic32: Path, tmp_path: Path
) -> None:
    res = train(tiny_config(synthetic32, tmp_path / "std", epochs=3), progress=False)
    losses = [h["train_loss"] for h in res.history]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.05
    assert res.best_path.is_file() and res.last_path.is_file()
    rows = [
        json.loads(line) for line in (tmp_path / "std" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and "val_auroc" in rows[0]
    assert (tmp_path / "std" / "metrics.csv").read_text().startswith("epoch,")
    best = load_checkpoint(res.best_path)
    assert best.meta["class_names"] == ["nodule", "normal", "opacity"]
    assert best.meta["train"]["mode"] == "standard" and best.meta["dual_bn"] is False
    best_epoch = max(res.history, key=lambda h: (h["val_auroc"], -h["epoch"]))["epoch"]
    assert best.meta["train"]["epoch"] == best_epoch  # best = highest clean validation AUROC
    assert best.meta["train"]["selection"]["metric"] == "val_auroc"


def test_dual_training_logs_both_losses_and_routes_diverge(
    synthetic32: Path, tmp_path: Path
) -> None:
    res = train(tiny_config(synthetic32, tmp_path / "dual", mode="dual", epochs=1), progress=False)
    h = res.history[0]
    assert h["train_loss"] == pytest.approx(h["train_loss_clean"] + h["train_loss_adv"], rel=1e-5)
    loaded = load_checkpoint(res.best_path)
    assert loaded.meta["dual_bn"] is True and loaded.meta["train"]["eps"] == 0.03
    assert loaded.meta["train"]["bn_momentum"] == 0.1  # short run: see TrainConfig
    sd = loaded.model.state_dict()
    assert not torch.allclose(
        sd["backbone.bn1.bns.0.running_mean"], sd["backbone.bn1.bns.1.running_mean"]
    )
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        clean = loaded.model(x)
        with bn_route(loaded.model, "adv"):
            adv = loaded.model(x)
    assert not torch.allclose(clean, adv, atol=1e-4)


def test_resume_continues_exactly(synthetic32: Path, tmp_path: Path) -> None:
    # A constant schedule so "stop after 1 of 2 epochs" is the same run as "1 epoch, then
    # resume to 2"; augmentation, shuffling and FGSM random starts all draw random numbers.
    opts = dict(mode="fast", augment="light", schedule="none")
    full = train(tiny_config(synthetic32, tmp_path / "full", epochs=2, **opts), progress=False)
    train(tiny_config(synthetic32, tmp_path / "part", epochs=1, **opts), progress=False)
    resumed = train(
        tiny_config(synthetic32, tmp_path / "part", epochs=2, resume=True, **opts), progress=False
    )
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    a = torch.load(full.last_path, weights_only=True)["state_dict"]
    b = torch.load(resumed.last_path, weights_only=True)["state_dict"]
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k


def test_init_from_and_freeze_through_keep_early_stages_fixed(
    synthetic32: Path, tmp_path: Path
) -> None:
    base = train(tiny_config(synthetic32, tmp_path / "base", mode="dual", epochs=1), progress=False)
    tuned = train(
        tiny_config(
            synthetic32,
            tmp_path / "ft",
            mode="standard",
            epochs=1,
            lr=1e-3,
            init_from=str(base.best_path),
            init_route="adv",
            freeze_through="layer2",
        ),
        progress=False,
    )
    src = torch.load(base.best_path, weights_only=True)["state_dict"]
    dst = torch.load(tuned.best_path, weights_only=True)["state_dict"]
    # Stem and layer1-2: weights and BN statistics equal the *adversarial* branch of the source.
    assert torch.equal(dst["backbone.conv1.weight"], src["backbone.conv1.weight"])
    assert torch.equal(dst["backbone.bn1.running_mean"], src["backbone.bn1.bns.1.running_mean"])
    assert torch.equal(
        dst["backbone.layer2.0.bn2.weight"], src["backbone.layer2.0.bn2.bns.1.weight"]
    )
    # Later stages trained on.
    assert not torch.equal(
        dst["backbone.layer4.0.conv1.weight"], src["backbone.layer4.0.conv1.weight"]
    )
    meta = load_checkpoint(tuned.best_path).meta["train"]
    assert meta["init_from"] == str(base.best_path) and meta["freeze_through"] == "layer2"


def test_bad_config_is_rejected_early(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        TrainConfig(data="x", out="y", mode="robust")
    with pytest.raises(ValueError, match="needs eps > 0"):
        TrainConfig(data="x", out="y", mode="dual", eps=0.0)
