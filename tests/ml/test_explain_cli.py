"""``radsal saliency`` end to end on a tiny synthetic lesion set, plus the real NIH subset."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.checkpoint import save_checkpoint
from ml.cli import saliency as saliency_cli
from ml.data.synthetic import make_lesion_dataset
from ml.explain.cases import load_cases, model_batch
from ml.models import bn_route, create_model

CLASSES = ["nodule", "normal", "opacity"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="radsal")
    saliency_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["saliency", *argv])
    return int(args.func(args))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("saliency")
    make_lesion_dataset(root / "data", n_train=3, n_val=6, image_size=32, seed=0)
    for name, dual in (("standard", False), ("dualbn", True)):
        torch.manual_seed(0)
        model = create_model("resnet_tiny", num_classes=3, in_channels=1, dual_bn=dual)
        if dual:  # give the adversarial BN its own statistics
            model.train()
            with bn_route(model, "adv"), torch.no_grad():
                model(torch.rand(16, 1, 32, 32) ** 4)
        save_checkpoint(
            root / f"{name}.pt",
            model,
            arch="resnet_tiny",
            num_classes=3,
            class_names=CLASSES,
            in_channels=1,
            image_size=32,
            normalize=None,
            dual_bn=dual,
            train={"mode": "test"},
        )
    return root


def test_cli_compares_two_checkpoints(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = workdir / "out"
    code = _run(
        "--checkpoint",
        str(workdir / "standard.pt"),
        "--checkpoint",
        str(workdir / "dualbn.pt"),
        "--route",
        "adv",
        "--data",
        str(workdir / "data"),
        "--method",
        "gradient",
        "--out",
        str(out),
        "--target",
        "ground_truth",
        "--limit",
        "4",
        "--faithfulness-steps",
        "4",
        "--sanity-cases",
        "2",
        "--no-progress",
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "standard" in printed and "dualbn-adv" in printed and "mask_energy" in printed

    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and {r["arm"] for r in rows} == {"standard", "dualbn-adv"}
    assert {r["route"] for r in rows if r["arm"] == "dualbn-adv"} == {"adv"}
    assert all(r["target"] == r["label"] for r in rows)  # ground-truth target policy
    lesion = [r for r in rows if r["label"] != "normal"]
    assert lesion and all(0.0 <= float(r["mask_energy"]) <= 1.0 for r in lesion)
    assert all(r["mask_energy"] == "" for r in rows if r["label"] == "normal")  # empty mask

    report = json.loads((out / "metrics.json").read_text())
    summary = {s["arm"]: s for s in report["summary"]}
    for arm in ("standard", "dualbn-adv"):
        s = summary[arm]
        assert s["n"] == 4 and 0 < s["gini"] < 1 and 0 <= s["mask_energy"] <= 1
        assert -1 <= s["randomization_spearman"] <= 1
        assert 0 <= s["deletion_auc"] <= 1 and 0 <= s["insertion_auc"] <= 1

    # Identical treatment: the same files, sizes and PNG layout for both arms.
    std = sorted(p.name for p in (out / "standard" / "heatmaps").iterdir())
    adv = sorted(p.name for p in (out / "dualbn-adv" / "heatmaps").iterdir())
    assert std == adv and len(std) == 4
    for name in std:
        a = Image.open(io.BytesIO((out / "standard" / "heatmaps" / name).read_bytes()))
        b = Image.open(io.BytesIO((out / "dualbn-adv" / "heatmaps" / name).read_bytes()))
        assert (a.mode, a.size, a.info) == (b.mode, b.size, b.info) == ("RGBA", (32, 32), {})
    raw = np.load(out / "dualbn-adv" / "raw" / f"{Path(std[0]).stem}.npy")
    assert raw.dtype == np.float16 and raw.shape == (32, 32)
    raw_std = np.load(out / "standard" / "raw" / f"{Path(std[0]).stem}.npy")
    assert not np.array_equal(raw, raw_std)  # the adversarial BN really was used

    prov = json.loads((out / "dualbn-adv" / "provenance.json").read_text())
    digest = hashlib.sha256((workdir / "dualbn.pt").read_bytes()).hexdigest()
    assert prov["checkpoint_sha256"] == digest and prov["route"] == "adv"
    assert prov["method"] == "gradient" and prov["versions"]["captum"]
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] > 300 and sheet.size[1] > 300


def test_cli_reports_bad_settings(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--checkpoint", str(workdir / "standard.pt"), "--out", str(workdir / "bad")]
    assert _run(*base, "--data", str(workdir / "data"), "--target", "class:tumour") == 2
    assert "unknown class name 'tumour'" in capsys.readouterr().err
    assert _run(*base, "--data", str(workdir / "missing")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _run(*base, "--data", str(workdir / "data"), "--params", '{"steps": 3}') == 2
    assert "unknown parameter" in capsys.readouterr().err
    data = ["--data", str(workdir / "data")]
    assert _run(*base, *data, "--postprocess-params", "[3]") == 2
    assert "--postprocess-params must be a JSON object" in capsys.readouterr().err
    assert _run(*base, *data, "--postprocess-params", '{"q": 3}') == 2
    assert "unknown parameter(s) ['q'] for mode 'clip_std'" in capsys.readouterr().err


def test_cases_and_masks_follow_the_letterbox(workdir: Path) -> None:
    cases = load_cases(workdir / "data", split="val")
    assert cases.class_names == CLASSES and len(cases.cases) == 6
    # Classes are interleaved, so a --limit still shows every class.
    first = load_cases(workdir / "data", split="val", limit=3)
    assert sorted(int(c.label.argmax()) for c in first.cases) == [0, 1, 2]
    batch = model_batch(cases.cases, 48, 1)
    assert batch.inputs.shape == (6, 1, 48, 48) and batch.masks is not None
    for case, mask in zip(cases.cases, batch.masks, strict=True):
        assert case.mask is not None
        assert bool(mask.any()) == bool(case.mask.any())
    labels = cases.labels_for(["opacity", "unknown", "nodule"])
    assert labels is not None and labels.shape == (6, 3) and float(labels[:, 1].sum()) == 0.0


def test_nih_subset_loads_with_box_masks(nih_dir: str) -> None:
    cases = load_cases(nih_dir, split="val")
    assert cases.class_names == ["normal", "pneumonia"] and not cases.multilabel
    with (Path(nih_dir) / "labels.csv").open() as fh:
        with_mask = {r["file"].split("/")[-1] for r in csv.DictReader(fh) if r["box_mask"]}
    masked = [c for c in cases.cases if c.mask is not None]
    assert masked and all(c.path.name in with_mask for c in masked)
    assert all(c.label[1] == 1.0 for c in masked)  # boxes exist only for pneumonia
    assert all(c.display.shape == (256, 256) and c.display.dtype == np.uint8 for c in masked)
