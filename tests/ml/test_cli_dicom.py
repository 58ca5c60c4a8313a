"""`radsal train` → `evaluate` → `saliency` on synthetic CT and MR DICOM series (issue 13).

The commands are the CT run docs/ml.md documents, read out of the guide and run through the
``radsal`` entry point in-process, so the guide cannot drift from what works. Only the data and
run folders move into a temporary directory, and a few options are appended (argparse keeps an
option's last value) so each run takes seconds on one CPU thread.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import torch

from app.cli.main import main as radsal
from ml.checkpoint import load_checkpoint
from ml.data.synthetic import CLASSES
from ml.data.synthetic_dicom import make_dicom_dataset

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "ml.md"
SECTION = "### CT and MR DICOM end to end"
# Appended to the documented commands: 32-px model, two short epochs, few resamples.
FAST = {
    "train": ["--image-size", "32", "--epochs", "2", "--batch-size", "8"],
    "evaluate": ["--eps", "0,0.01", "--steps", "1", "--bootstrap", "50"],
    "saliency": ["--faithfulness-steps", "4", "--sanity-cases", "2", "--bootstrap", "50"],
}
QUIET = ["--threads", "1", "--no-progress"]
N_TEST = 6


def _documented_commands() -> dict[str, list[str]]:
    """The ``radsal`` commands of the guide's CT section, by subcommand, as argv lists."""
    text = GUIDE.read_text()
    assert SECTION in text, f"docs/ml.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n#", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the CT section of docs/ml.md has no bash block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    commands: dict[str, list[str]] = {}
    for line in lines:
        argv = shlex.split(line)
        if argv and argv[0] == "radsal":
            commands[argv[1]] = argv[1:]
    assert set(commands) == {"train", "evaluate", "saliency"}, commands
    return commands


def _moved(argv: list[str], data: Path, runs: Path) -> list[str]:
    out = []
    for token in argv:
        if token == "data/ct":
            token = str(data)
        elif token.startswith("runs/"):
            token = str(runs / token.removeprefix("runs/"))
        out.append(token)
    return out


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    rc = radsal(argv)
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert rc == 0, printed
    assert "Traceback" not in printed and "error:" not in printed, printed
    return captured.out


def _first(value: Any) -> float:
    """The first of a multi-valued DICOM element (CT lists two windows), or the value."""
    return float(value[0] if isinstance(value, pydicom.multival.MultiValue) else value)


def _model_input(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The input the guide promises, computed from the file with pydicom alone (stored values
    → rescale → the header's first window, DICOM's linear function → [0, 1]), and the same
    values min–max scaled instead, as a pipeline that ignored the window would give."""
    ds = pydicom.dcmread(path)
    slope, intercept = float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0))
    values = ds.pixel_array.astype(np.float64) * slope + intercept
    centre, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    windowed = np.clip((values - (centre - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)
    return windowed, (values - values.min()) / (values.max() - values.min())


@pytest.mark.parametrize("modality", ["ct", "mr"])
def test_documented_dicom_run_trains_evaluates_and_explains(
    modality: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_dicom_dataset(
        tmp_path / modality,
        modality=modality,
        n_train=12,
        n_val=6,
        n_test=N_TEST,
        image_size=32,
        lesion_contrast=2.0,
    )
    runs = tmp_path / "runs"
    docs = {name: _moved(argv, data, runs) for name, argv in _documented_commands().items()}

    # train: a checkpoint that knows the classes, the input size and the held-out test split.
    printed = json.loads(_run([*docs["train"], *FAST["train"], *QUIET], capsys))
    best = Path(printed["best"])
    assert best == runs / "ct-std" / "best.pt" and best.is_file()
    ckpt = load_checkpoint(best)
    assert ckpt.meta["class_names"] == sorted(CLASSES)
    assert (ckpt.meta["image_size"], ckpt.meta["in_channels"]) == (32, 1)
    split = ckpt.meta["train"]["split"]
    assert split["heldout"] == "test"
    assert split["sizes"] == {"train": 12, "val": 6, "test": N_TEST}
    assert split["masked"]["test"] == N_TEST

    # evaluate: the held-out split, AUROCs in [0, 1] inside their CIs, the ε sweep asked for.
    _run([*docs["evaluate"], *FAST["evaluate"], *QUIET], capsys)
    report = json.loads((runs / "ct-std" / "eval" / "report.json").read_text())
    assert (report["split"], report["n_images"]) == ("test", N_TEST)
    assert report["split_check"] == "same split as in training"
    clean = report["routes"]["clean"]
    assert 0.0 <= clean["macro_auroc"] <= 1.0 and 0.0 <= clean["accuracy"] <= 1.0
    assert set(clean["per_class"]) == set(CLASSES)
    for c in clean["per_class"].values():
        assert 0.0 <= c["ci_low"] <= c["auroc"] <= c["ci_high"] <= 1.0
    assert [row["eps"] for row in clean["robust"]] == [0.0, 0.01]
    assert (runs / "ct-std" / "eval" / "roc_clean.png").stat().st_size > 0

    # saliency: one map per held-out case, each lesion scored against its mask.
    _run([*docs["saliency"], *FAST["saliency"], *QUIET], capsys)
    maps = runs / "ct-std" / "maps"
    with (maps / "metrics.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["arm"] == "ct-std"]
    assert len(rows) == N_TEST and all(r["case_id"].startswith("test__") for r in rows)
    assert all(r["target"] == r["label"] for r in rows)  # --target ground_truth
    assert len(list((maps / "ct-std" / "heatmaps").iterdir())) == N_TEST
    lesions = [r for r in rows if r["label"] != "normal"]
    assert len(lesions) == 4 and all(r["mask_energy"] == "" for r in rows if r not in lesions)
    for r in lesions:
        assert 0.0 < float(r["mask_area"]) < 1.0
        assert 0.0 <= float(r["mask_energy"]) <= 1.0 and float(r["pointing"]) in (0.0, 1.0)
    stats = json.loads((maps / "statistics.json").read_text())
    arm = next(a for a in stats["arms"] if a["arm"] == "ct-std")
    for metric in ("mask_energy", "pointing"):
        assert math.isfinite(arm["metrics"][metric]["mean"]), metric

    # What the model saw: each case's HU (CT) or signal (MR) in the header's first window. The
    # probabilities saliency recorded are reproduced from the files with pydicom alone, and a
    # plain min–max scaling of the same values (no window) would have given others.
    model = ckpt.model.eval()
    windowed, minmax = zip(
        *(_model_input(data / (r["case_id"].replace("__", "/") + ".dcm")) for r in rows),
        strict=True,
    )
    with torch.no_grad():
        probs = model(torch.tensor(np.stack(windowed), dtype=torch.float32)[:, None]).softmax(1)
        other = model(torch.tensor(np.stack(minmax), dtype=torch.float32)[:, None]).softmax(1)
    labels = [sorted(CLASSES).index(r["label"]) for r in rows]
    recorded = torch.tensor([float(r["prob_target"]) for r in rows])
    idx = torch.arange(len(rows))
    assert torch.allclose(probs[idx, labels], recorded, atol=1e-4)
    assert not torch.allclose(other[idx, labels], recorded, atol=1e-3)
