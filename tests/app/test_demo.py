"""`radsal demo`: the data it prepares, its resumable steps, --reset, and the real build.

The build test runs the real command (a subprocess, as a newcomer would) at a reduced size and
checks the database it leaves behind: an open study whose every trial has both maps.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select, text

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.demo.data import NIH_ATTRIBUTION, choose_study_rows, read_user_data
from app.demo.manifest import Steps, load_manifest, manifest_path
from app.demo.options import DataError, DemoError
from app.demo.progress import StepLog
from app.demo.reset import reset_demo

ROOT = Path(__file__).resolve().parents[2]
# Small enough for the suite: 32 px, 1 epoch, 12 cases, 2 raters (see docs/benchmarks.md#demo).
# The subprocess runs torch on one thread: a tiny model gains nothing from two, and two threads
# spin-waiting on a busy machine (the suite runs other processes) cost ten times the time.
SMALL = [
    "--image-size", "32", "--epochs", "1", "--n-train", "48", "--n-images", "12",
    "--raters", "2", "--batch-size", "16", "--no-progress",
]  # fmt: skip


def _png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.full((8, 8), value, np.uint8), mode="L").save(path)
    return path


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ------------------------------------------------------------------------------ user data


def test_user_csv_is_split_by_patient_and_keeps_masks(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        name = f"images/{i:03d}.png"
        _png(tmp_path / name)
        mask = ""
        if i % 5 == 0:
            mask = f"box_masks/{i:03d}.png"
            _png(tmp_path / mask, 255)
        rows.append(
            {
                "file": name,
                "label": str(i % 2),
                "class": "pneumonia" if i % 2 else "normal",
                "patient_id": str(i // 4),  # four images per patient
                "box_mask": mask,
            }
        )
    _write_csv(tmp_path / "labels.csv", rows)

    out, attribution = read_user_data(tmp_path, seed=0)

    assert attribution == ""
    assert len(out) == 40
    # The class name column wins over the 0/1 column: labels are the class names.
    assert {r["label"] for r in out} == {"normal", "pneumonia"}
    splits_by_patient: dict[str, set[str]] = {}
    for row, src in zip(out, rows, strict=True):
        splits_by_patient.setdefault(src["patient_id"], set()).add(row["split"])
        assert Path(row["path"]).is_absolute() and Path(row["path"]).is_file()
        assert bool(row["mask"]) == bool(src["box_mask"])
    assert all(len(s) == 1 for s in splits_by_patient.values()), "a patient straddles splits"
    assert {r["split"] for r in out} <= {"train", "val", "test"}
    # Reproducible: the same seed gives the same split.
    assert read_user_data(tmp_path, seed=0)[0] == out


def test_nih_license_notes_give_the_nih_attribution(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    _write_csv(
        tmp_path / "labels.csv",
        [{"path": "a.png", "label": "x", "split": "train"}, {"path": "b.png", "label": "y"}],
    )
    (tmp_path / "LICENSE-NOTES.md").write_text(
        "NIH ChestX-ray8 / ChestX-ray14, NIH Clinical Center"
    )
    rows, attribution = read_user_data(tmp_path / "labels.csv", seed=0)
    assert attribution == NIH_ATTRIBUTION
    assert "nihcc.app.box.com" in attribution and "CVPR 2017" in attribution
    assert rows[0]["split"] == "train"  # an explicit split is kept


def test_folder_layout_is_read_with_folder_names_as_labels(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        for cls in ("benign", "malignant"):
            _png(tmp_path / split / cls / f"{split}-{cls}.png")
    rows, _ = read_user_data(tmp_path, seed=0)
    assert len(rows) == 6
    assert {(r["split"], r["label"]) for r in rows} == {
        (s, c) for s in ("train", "val", "test") for c in ("benign", "malignant")
    }


def test_unusable_user_data_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_user_data(tmp_path / "nope", seed=0)
    _write_csv(tmp_path / "labels.csv", [{"path": "missing.png", "label": "a"}])
    with pytest.raises(DataError, match="missing"):
        read_user_data(tmp_path, seed=0)
    _write_csv(tmp_path / "labels.csv", [{"what": "x.png"}])
    with pytest.raises(DataError, match="path column"):
        read_user_data(tmp_path, seed=0)


def test_study_cases_come_from_test_split_balanced_and_masked_first() -> None:
    rows = [
        {"path": f"/x/{s}{i}.png", "split": s, "label": c, "mask": "m" if i < 2 else ""}
        for s in ("train", "test")
        for c in ("a", "b")
        for i in range(10)
    ]
    # Unique paths per class.
    for n, row in enumerate(rows):
        row["path"] = f"/x/{n}.png"
    chosen = choose_study_rows(rows, 8, seed=1)
    assert len(chosen) == 8
    assert all(r["split"] == "test" for r in chosen)
    assert [r["label"] for r in chosen] == ["a", "b"] * 4
    assert [bool(r["mask"]) for r in chosen[:4]] == [True] * 4  # 2 masked per class first
    assert choose_study_rows(rows, 8, seed=1) == chosen
    # A test split too small is topped up from val (never from train).
    val = [dict(r, split="val", path=r["path"] + ".v") for r in rows if r["split"] == "train"]
    topped = choose_study_rows(rows + val, 30, seed=0)
    assert len(topped) == 30
    assert sum(r["split"] == "test" for r in topped) == 20
    assert {r["split"] for r in topped} == {"test", "val"}
    # Asking for more than exist gives all of test and val.
    assert len(choose_study_rows(rows + val, 100, seed=0)) == 40


# ------------------------------------------------------------------------- resumable steps


def test_steps_reuse_unchanged_work_and_redo_changed_or_missing_work(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="sqlite://", secret_key="x")
    out = io.StringIO()
    target = tmp_path / "artefact.txt"
    calls: list[int] = []

    def build() -> dict[str, Any]:
        calls.append(1)
        target.write_text("built")
        return {"file": str(target)}

    def run(key: dict[str, Any]) -> dict[str, Any]:
        manifest = load_manifest(settings)
        steps = Steps(settings, manifest, StepLog(1, out))
        return steps.run(
            "thing", "Building a thing", key, build, lambda r: Path(r["file"]).exists()
        )

    assert run({"size": 1}) == {"file": str(target)}
    assert run({"size": 1}) == {"file": str(target)}
    assert len(calls) == 1, "an unchanged step was rebuilt"
    assert "reused from an earlier run" in out.getvalue()
    run({"size": 2})
    assert len(calls) == 2, "a step with changed inputs was reused"
    target.unlink()
    run({"size": 2})
    assert len(calls) == 3, "a step whose output disappeared was reused"
    manifest = json.loads(manifest_path(settings).read_text())
    assert manifest["steps"]["thing"]["seconds"] >= 0
    assert oct(manifest_path(settings).stat().st_mode & 0o777) == "0o600"


def test_reset_deletes_demo_artefacts_and_sqlite_but_nothing_else(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, secret_key="x")
    for rel in ("demo.json", "radsal.sqlite", "radsal.sqlite-wal", "demo/dataset/a.png",
                "images/ab/x.png", "maps/cd/y.png", "checkpoints/ef/z.pt"):  # fmt: skip
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_text("x")
    keep = data / "my-notes.txt"
    keep.write_text("mine")

    removed = reset_demo(settings)

    assert keep.read_text() == "mine"
    assert sorted(p.name for p in data.iterdir()) == ["my-notes.txt"]
    assert data / "radsal.sqlite" in removed


def test_reset_refuses_a_server_database(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+psycopg://u@db/radsal", secret_key="x"
    )
    (tmp_path / "demo.json").write_text("{}")
    with pytest.raises(DemoError, match="SQLite"):
        reset_demo(settings)
    assert (tmp_path / "demo.json").exists(), "a refused reset must delete nothing"


def _radsal(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli_reset_on_postgres_exits_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main
    from app.config import get_settings

    monkeypatch.setenv("RADSAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RADSAL_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        assert main(["demo", "--reset", "--no-serve"]) == 2
    finally:
        get_settings.cache_clear()
    assert "only works on the embedded SQLite" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_printed_links_point_where_the_demo_serves_unless_a_base_url_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.cli.demo import public_url

    monkeypatch.delenv("RADSAL_BASE_URL", raising=False)
    plain = Settings(_env_file=None, secret_key="x")
    assert public_url(plain, "127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert public_url(plain, "0.0.0.0", 80) == "http://127.0.0.1:80"  # a browsable address
    proxied = Settings(_env_file=None, secret_key="x", base_url="https://radsal.example.org/")
    assert public_url(proxied, "0.0.0.0", 8000) == "https://radsal.example.org"


# ------------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def demo_database_url() -> Iterator[str]:
    """The demo's own database: SQLite in its data directory (the default), or a fresh
    PostgreSQL schema when the suite runs on PostgreSQL (RADSAL_TEST_DATABASE_URL)."""
    server = os.environ.get("RADSAL_TEST_DATABASE_URL", "")
    if not server.startswith("postgresql"):
        yield ""
        return
    schema = f"radsal_demo_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in server else "?"
    try:
        yield f"{server}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def built_demo(
    tmp_path_factory: pytest.TempPathFactory, demo_database_url: str
) -> Iterator[dict[str, Any]]:
    """`radsal demo --no-serve` at a reduced size, once for the module."""
    data = tmp_path_factory.mktemp("demo") / "data"
    env = {
        "RADSAL_DATA_DIR": str(data),
        "RADSAL_DATABASE_URL": demo_database_url,
        "RADSAL_DEVICE": "cpu",
        "RADSAL_BASE_URL": "http://demo.example:9999",
        "RADSAL_BATCH_SIZE": "8",
    }
    result = _radsal(env, "demo", "--no-serve", *SMALL)
    assert result.returncode == 0, result.stdout + result.stderr
    engine = make_engine(demo_database_url or f"sqlite:///{data / 'radsal.sqlite'}")
    try:
        yield {
            "data": data,
            "env": env,
            "result": result,
            "sessionmaker": make_sessionmaker(engine),
        }
    finally:
        engine.dispose()


@pytest.mark.slow
def test_demo_builds_an_open_study_with_every_map(built_demo: dict[str, Any]) -> None:
    from app.models import Arm, Checkpoint, Image, SaliencyMap, Study, Trial, User

    factory = built_demo["sessionmaker"]
    with factory() as db:
        studies = db.scalars(select(Study)).all()
        assert len(studies) == 1
        study = studies[0]
        assert study.status == "open"
        arms = db.scalars(select(Arm).where(Arm.study_id == study.id)).all()
        ckpts = {a.id: db.get(Checkpoint, a.checkpoint_id) for a in arms}
        assert sorted(c.dual_bn for c in ckpts.values() if c) == [False, True]
        assert {a.method for a in arms} == {"gradient"}
        assert {a.bn_route for a in arms} == {None, "clean"}
        assert db.scalar(select(func.count(Image.id))) == 12
        # Every rater sees every case once: 12 cases x 2 raters, plus per rater a practice
        # block of 2 cases and 2 catch trials (one of each kind) (issue 15).
        trials = db.scalars(select(Trial).where(Trial.study_id == study.id)).all()
        assert len(trials) == 2 * (12 + 2 + 2)
        kinds = sorted(str((t.protocol or {}).get("phase") or (t.protocol or {}).get("catch"))
                       for t in trials if t.protocol)  # fmt: skip
        assert kinds == ["practice"] * 4 + ["randomised"] * 2 + ["same"] * 2
        assert {t.rater_id for t in trials} == {
            u.id for u in db.scalars(select(User).where(User.role == "rater"))
        }
        fake = {
            (t.protocol["catch_arm"], t.image_id)
            for t in trials
            if t.protocol and t.protocol.get("catch") == "randomised"
        }
        targets = [m.target for m in db.scalars(select(SaliencyMap))]
        assert sum(not t.endswith("|randomised") for t in targets) == 2 * 12
        assert sum(t.endswith("|randomised") for t in targets) == len(fake)
        kinds_of_items = [i["kind"] for i in study.items]
        assert "blinding" in kinds_of_items and "localise" in kinds_of_items
        roles = sorted(u.role for u in db.scalars(select(User)))
        assert roles == ["admin", "rater", "rater", "researcher"]


@pytest.mark.slow
def test_demo_prints_logins_invites_and_timings(built_demo: dict[str, Any]) -> None:
    out = built_demo["result"].stdout
    assert re.search(r"admin\s+admin\s+password \S{8,}", out)
    assert re.search(r"researcher\s+researcher\s+password \S{8,}", out)
    invites = re.findall(r"http://demo\.example:9999/invite/[\w-]{20,}", out)
    assert len(invites) == 2, out
    assert re.search(r"standard model\s+(0|1)\.\d{3} / (0|1)\.\d{3}", out), out
    assert re.search(r"dual-BN model\s+(0|1)\.\d{3} / (0|1)\.\d{3}", out), out
    err = built_demo["result"].stderr
    for n in range(1, 11):
        assert f"[{n}/10]" in err
    assert "done in" in err
    manifest = json.loads((built_demo["data"] / "demo.json").read_text())
    assert set(manifest["last_run"]["timings"]) >= {"dataset", "train_standard", "maps"}


@pytest.mark.slow
def test_rerunning_reuses_everything_and_keeps_the_study(built_demo: dict[str, Any]) -> None:
    from app.models import Study

    result = _radsal(built_demo["env"], "demo", "--no-serve", *SMALL)
    assert result.returncode == 0, result.stderr
    reused = re.findall(r"\] (.*): reused from an earlier run", result.stderr)
    assert len(reused) == 7, result.stderr  # every step but migrations and accounts
    manifest = json.loads((built_demo["data"] / "demo.json").read_text())
    assert manifest["last_run"]["timings"]["train_standard"] == 0.0
    with built_demo["sessionmaker"]() as db:
        assert db.scalar(select(func.count(Study.id))) == 1
    # Raters who have not joined get fresh links; the admin password is printed again.
    assert len(re.findall(r"/invite/[\w-]{20,}", result.stdout)) == 2
    assert re.search(r"admin\s+admin\s+password \S{8,}", result.stdout)


@pytest.mark.slow
def test_demo_on_the_nih_chest_xrays_credits_the_nih(nih_dir: str, tmp_path: Path) -> None:
    from app.models import Image, Study

    data = tmp_path / "data"
    result = _radsal(
        {"RADSAL_DATA_DIR": str(data), "RADSAL_DATABASE_URL": "", "RADSAL_DEVICE": "cpu"},
        "demo",
        "--no-serve",
        "--data",
        nih_dir,
        *SMALL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NIH Clinical Center" in result.stdout
    engine = make_engine(f"sqlite:///{data / 'radsal.sqlite'}")
    try:
        with make_sessionmaker(engine)() as db:
            study = db.scalars(select(Study)).one()
            assert study.status == "open"
            # Raters read the instructions on every trial page: the credit the licence asks for.
            assert NIH_ATTRIBUTION in study.instructions
            images = db.scalars(select(Image)).all()
            assert len(images) == 12
            assert {k for i in images for k, v in i.labels.items() if v} == {"normal", "pneumonia"}
            # Cases with a box mask come first, so the study carries masks for map metrics.
            assert sum(i.mask_path is not None for i in images) >= 1
    finally:
        engine.dispose()
    # The images were read where they lie: none was copied into the data set folder.
    assert not list((data / "demo" / "dataset").glob("**/*.png"))
