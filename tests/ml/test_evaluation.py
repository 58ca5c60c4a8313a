"""evaluate_checkpoint: report contents, plots, both BN routes, robustness of trained models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml.data import DatasetError
from ml.data.synthetic import make_lesion_dataset
from ml.evaluation import evaluate_checkpoint
from ml.training import TrainConfig, TrainResult, train


def _train(data: Path, out: Path, mode: str, epochs: int, eps: float = 0.02) -> TrainResult:
    cfg = TrainConfig(
        data=str(data),
        out=str(out),
        mode=mode,
        arch="resnet_tiny",
        epochs=epochs,
        image_size=32,
        batch_size=16,
        lr=3e-3,
        eps=eps,
        steps=2,
        augment="none",
        threads=1,
    )
    return train(cfg, progress=False)


def test_report_for_dual_model_has_both_routes_cis_and_plots(
    synthetic32: Path, tmp_path: Path
) -> None:
    res = _train(synthetic32, tmp_path / "dual", "dual", epochs=1)
    out = tmp_path / "eval"
    rep = evaluate_checkpoint(
        res.best_path,
        synthetic32,
        split="test",
        eps=[0.01],
        steps=2,
        out_dir=out,
        n_bootstrap=50,
        progress=False,
    )
    assert set(rep["routes"]) == {"clean", "adv"} and rep["n_images"] == 30
    for route in ("clean", "adv"):
        r = rep["routes"][route]
        assert [row["eps"] for row in r["robust"]] == [0.0, 0.01]
        assert r["robust"][0]["accuracy"] == r["accuracy"]
        assert r["robust"][1]["loss"] > r["robust"][0]["loss"]  # the attack hurts
        for name in ("nodule", "normal", "opacity"):
            c = r["per_class"][name]
            assert c["n_pos"] == 10 and c["n_neg"] == 20
            assert c["ci_low"] <= c["auroc"] <= c["ci_high"]
    assert json.loads((out / "report.json").read_text())["sha256"] == rep["sha256"]
    for name in ("roc_clean.png", "roc_adv.png", "robustness.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mismatched_classes_are_reported(synthetic32: Path, tmp_path: Path) -> None:
    res = _train(synthetic32, tmp_path / "std", "standard", epochs=1)
    other = make_lesion_dataset(
        tmp_path / "two", n_train=4, n_val=4, image_size=32, classes=("normal", "nodule")
    )
    with pytest.raises(DatasetError, match="do not match the checkpoint"):
        evaluate_checkpoint(res.best_path, other, eps=[], n_bootstrap=0, progress=False)


@pytest.fixture(scope="module")
def easy32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Normal vs opacity with doubled lesion contrast: learnable in a few CPU epochs."""
    return make_lesion_dataset(
        tmp_path_factory.mktemp("easy"),
        n_train=160,
        n_val=60,
        image_size=32,
        seed=1,
        classes=("normal", "opacity"),
        lesion_contrast=2.0,
    )


@pytest.mark.slow
def test_adversarial_and_dual_training_are_more_robust_than_standard(
    easy32: Path, tmp_path: Path
) -> None:
    eps = 0.02
    robust = {}
    for mode in ("standard", "adversarial", "dual"):
        res = _train(easy32, tmp_path / mode, mode, epochs=8, eps=eps)
        rep = evaluate_checkpoint(
            res.best_path, easy32, eps=[eps], steps=5, n_bootstrap=0, progress=False
        )
        route = "adv" if mode == "dual" else "clean"
        clean, attacked = rep["routes"][route]["robust"]
        assert clean["accuracy"] >= 0.8, (mode, clean)  # every model learned the task
        robust[mode] = attacked["accuracy"]
    assert robust["standard"] < 0.3, robust
    assert robust["adversarial"] > robust["standard"] + 0.3, robust
    assert robust["dual"] > robust["standard"] + 0.3, robust
