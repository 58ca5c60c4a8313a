"""Model selection that cannot fail silently, dual-BN diagnostics, and names for every model."""

from __future__ import annotations

import argparse
import json
import logging
from functools import partial
from pathlib import Path

import pytest
import torch

from ml.checkpoint import load_checkpoint
from ml.cli import evaluate as evaluate_cli
from ml.cli import train as train_cli
from ml.evaluation import evaluate_checkpoint
from ml.evaluation.dual_bn import dual_bn_diagnostics, not_separated
from ml.models import create_model
from ml.training import train
from ml.training.selection import format_history, selection_warnings
from tests.ml.tiny_training import tiny_config

# One attack step is enough for what checkpoint selection is checked on.
_cfg = partial(tiny_config, steps=1)


def _issue_history() -> list[dict[str, object]]:
    """The run from the issue: accuracy stuck at 0.5 for epochs 1-9 while AUROC swung, and the
    lowest validation loss at the epoch with AUROC 0.168."""
    aurocs = [0.86, 0.55, 0.31, 0.62, 0.168, 0.4, 0.7, 0.5, 0.45, 0.80, 0.81, 0.815]
    losses = [0.70, 0.69, 0.69, 0.69, 0.65, 0.69, 0.69, 0.69, 0.69, 0.66, 0.66, 0.66]
    return [
        {
            "epoch": e + 1,
            "val_auroc": a,
            "val_loss": loss,
            "val_accuracy": 0.5 if e < 9 else 0.74,
            "val_predicted_classes": 1 if e < 9 else 2,
            "val_collapsed": e < 9,
        }
        for e, (a, loss) in enumerate(zip(aurocs, losses, strict=True))
    ]


def test_the_issues_silent_selection_failure_now_warns_three_times() -> None:
    history = _issue_history()
    warnings = selection_warnings(history, "loss", selected_epoch=5)
    text = "\n".join(warnings)
    assert "collapsed to a single class in epoch(s) 1-9 of 12" in text
    assert "selected epoch 5 has collapsed" in text
    assert "worse than chance (validation AUROC 0.168" in text
    assert "0.692 below the run's best 0.860 at epoch 1" in text
    assert selection_warnings(history[9:], "auroc", selected_epoch=12) == []
    table = format_history(history, 5).splitlines()
    assert "val AUROC" in table[0] and "pred classes" in table[0]
    assert len(table) == 13 and table[5].rstrip().endswith("*")


def test_default_selects_by_auroc_and_loss_is_an_option(synthetic32: Path, tmp_path: Path) -> None:
    res = train(_cfg(synthetic32, tmp_path / "a", epochs=3, lr=1e-2), progress=False)
    best_auroc = max(res.history, key=lambda h: (h["val_auroc"], -h["epoch"]))["epoch"]
    assert res.selection["epoch"] == best_auroc and res.selection["metric"] == "val_auroc"
    on_disk = json.loads((tmp_path / "a" / "selection.json").read_text())
    assert on_disk["epoch"] == best_auroc
    meta = load_checkpoint(res.best_path).meta["train"]
    assert meta["epoch"] == best_auroc and meta["selection"]["epoch"] == best_auroc
    by_loss = train(
        _cfg(synthetic32, tmp_path / "l", epochs=3, lr=1e-2, select_metric="loss"),
        progress=False,
    )
    lowest = min(by_loss.history, key=lambda h: (h["val_loss"], h["epoch"]))["epoch"]
    assert load_checkpoint(by_loss.best_path).meta["train"]["epoch"] == lowest
    assert all("val_predicted_classes" in h and "val_collapsed" in h for h in by_loss.history)


def test_collapsed_validation_is_logged_loudly(
    synthetic32: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A learning rate this small leaves the tiny network predicting one class on everything.
    with caplog.at_level(logging.WARNING, logger="ml.training.trainer"):
        res = train(_cfg(synthetic32, tmp_path / "c", epochs=1, lr=1e-7), progress=False)
    assert res.history[0]["val_predicted_classes"] == 1 and res.history[0]["val_collapsed"]
    assert any("collapsed to a single class" in r.getMessage() for r in caplog.records)
    assert any("collapsed" in w for w in res.selection["warnings"])


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="radsal")
    sub = parser.add_subparsers(dest="command")
    train_cli.add_parser(sub)
    evaluate_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_prints_the_epoch_table_and_names_models(
    synthetic32: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--data", str(synthetic32), "--arch", "resnet_tiny", "--epochs", "2"]
    common += ["--image-size", "32", "--augment", "none", "--threads", "1", "--no-progress"]
    assert _cli(["train", *common, "--out", str(tmp_path / "nih-std")]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # stdout stays one JSON object
    assert printed["selected_epoch"] in (1, 2) and isinstance(printed["warnings"], list)
    assert "val AUROC" in captured.err and "best.pt: epoch" in captured.err
    std = load_checkpoint(tmp_path / "nih-std" / "best.pt").meta["train"]
    assert std["label"] == "nih-std"  # the folder, never "best"
    assert not {"eps", "norm", "step_size", "steps"} & set(std)  # no unused attack settings
    argv = ["train", *common, "--mode", "dual", "--eps", "0.01", "--steps", "1"]
    assert _cli([*argv, "--label", "dual-eps0.01", "--out", str(tmp_path / "d")]) == 0
    dual = load_checkpoint(tmp_path / "d" / "best.pt").meta["train"]
    assert dual["label"] == "dual-eps0.01" and dual["eps"] == 0.01 and dual["steps"] == 1


def test_dual_bn_divergence_is_logged_in_training_and_reported_by_evaluate(
    synthetic32: Path, tmp_path: Path
) -> None:
    res = train(_cfg(synthetic32, tmp_path / "dual", mode="dual", epochs=2), progress=False)
    for row in res.history:
        assert row["bn_mean_shift"] > 0.0 and -1.0 <= row["map_spearman"] <= 1.0
        assert 0.0 <= row["prediction_disagreement"] <= 1.0
    assert "map_spearman" in (tmp_path / "dual" / "metrics.csv").read_text().splitlines()[0]
    report = evaluate_checkpoint(res.best_path, synthetic32, eps=[], n_bootstrap=10, progress=False)
    div = report["dual_bn_divergence"]
    assert report["split"] == "test"  # the folder has a test split: the held-out one
    assert div["bn_mean_shift"] > 0 and div["n_images"] == 30
    assert div["map_distance"] == pytest.approx(1 - div["map_spearman"])


def test_branches_that_never_separated_are_called_out() -> None:
    model = create_model("resnet_tiny", 2, 1, dual_bn=True).eval()  # both branches equal
    diag = dual_bn_diagnostics(model, torch.rand(6, 1, 32, 32), multilabel=False)
    assert diag["bn_mean_shift"] == 0.0 and diag["map_spearman"] == pytest.approx(1.0)
    assert diag["prediction_disagreement"] == 0.0
    warning = not_separated(diag)
    assert warning is not None and "have not separated" in warning
    # Near-identical predictions are enough to call it, whatever the (noisy) maps say.
    assert not_separated({**diag, "map_spearman": 0.4}) is not None
    apart = {**diag, "map_spearman": 0.4, "prob_gap": 0.08, "prediction_disagreement": 0.1}
    assert not_separated(apart) is None
