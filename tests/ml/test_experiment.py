"""``radsal experiment`` at tiny scale on synthetic lesions with masks, where the answer is known:
real maps localise the lesion, the shuffled-mask baseline sits at chance."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ml.cli import experiment as experiment_cli
from ml.data.synthetic import make_lesion_dataset


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="radsal")
    experiment_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.mark.slow
def test_experiment_finds_the_known_answer_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_lesion_dataset(
        tmp_path / "data",
        n_train=240,
        n_val=45,
        n_test=45,
        image_size=48,
        seed=3,
        lesion_contrast=3.0,
    )
    out = tmp_path / "exp"
    argv = ["experiment", "--data", str(data), "--out", str(out), "--arch", "resnet_tiny"]
    argv += ["--image-size", "48", "--epochs", "6", "--lr", "1e-2", "--augment", "none"]
    argv += ["--eps", "0.01", "--steps", "1", "--threads", "1", "--eval-eps", "0.01"]
    argv += ["--eval-steps", "1", "--bootstrap", "300", "--faithfulness-steps", "4"]
    argv += ["--sanity-cases", "2"]
    assert _run(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["stages"][-1] == "report"
    assert "[experiment] 5/6 maps ..." in captured.err  # progress throughout

    stats = json.loads((out / "maps" / "statistics.json").read_text())
    arms = {a["arm"]: a for a in stats["arms"]}
    assert set(arms) >= {
        "standard",
        "dual-bn-clean",
        "dual-bn-adv",
        "standard · shuffled masks",
        "null-random-weights",
        "null-untrained",
    }
    # Chance for a map that knows nothing: its energy inside a mask equals the mask's area.
    # Maps that follow the lungs score a little above that against other cases' masks (the
    # lesions sit in the lungs), so "at chance" is: the shuffled baseline's excess over the
    # area is small beside the real maps' excess, and its pointing game is a rare hit.
    chance = stats["mask_area_mean"]
    shuffled = arms["standard · shuffled masks"]["metrics"]
    real = arms["standard"]["metrics"]
    excess = shuffled["mask_energy"]["mean"] - chance
    assert excess < (real["mask_energy"]["mean"] - chance) / 3
    assert shuffled["pointing"]["mean"] < 0.3 < 0.6 < real["pointing"]["mean"]
    assert real["mask_energy"]["ci_low"] > shuffled["mask_energy"]["ci_high"]  # CIs apart
    paired = {(p["a"], p["b"], p["metric"]): p for p in stats["paired"]}
    diff = paired[("standard · shuffled masks", "standard", "mask_energy")]
    assert diff["ci_low"] > 0 and diff["wilcoxon_p"] < 0.01 and diff["n"] == 30
    assert paired[("null-untrained", "standard", "pointing")]["mean_diff"] > 0.3
    assert ("standard", "dual-bn-adv", "mask_energy") in paired

    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "src='http" not in html  # self-contained
    for text in ("Paired differences", "shuffled masks", "Branch divergence", "val AUROC"):
        assert text in html
    eval_std = json.loads((out / "eval" / "standard" / "report.json").read_text())
    assert eval_std["split"] == "test"  # the held-out split, for numbers and maps alike
    dual = json.loads((out / "eval" / "dual-bn" / "report.json").read_text())
    assert dual["train"]["seed"] == eval_std["train"]["seed"]
    assert dual["train"]["split"]["digest"] == eval_std["train"]["split"]["digest"]

    # Interrupted after training the dual model: a rerun resumes, retraining nothing.
    state = json.loads((out / "experiment.json").read_text())
    for stage in ("train-dual-bn", "maps", "report"):
        del state["done"][stage]
    (out / "experiment.json").write_text(json.dumps(state))
    log_before = (out / "models" / "dual-bn" / "metrics.jsonl").read_text()
    assert _run(argv) == 0
    err = capsys.readouterr().err
    assert "1/6 train-standard: done earlier, skipped" in err and "5/6 maps ..." in err
    assert (out / "models" / "dual-bn" / "metrics.jsonl").read_text() == log_before
    assert _run([*argv[:-2], "--sanity-cases", "3"]) == 2  # other settings: refused
    assert "other settings" in capsys.readouterr().err
