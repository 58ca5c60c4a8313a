"""`radsal export` and `radsal analyze` against a real (file) SQLite database."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from app.auth.passwords import hash_password
from app.cli.main import main
from app.config import get_settings
from app.db import make_engine, make_sessionmaker
from app.migrate import upgrade_database
from app.models import User
from tests.app.analysis_helpers import rate
from tests.factories import make_open_study


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """A committed database with one rated study and one empty study; settings point at it."""
    data = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    engine = make_engine(url)
    upgrade_database(engine)
    db: Session = make_sessionmaker(engine)()
    raters = [
        User(username=f"reader{i}", role="rater", password_hash=hash_password("x" * 12))
        for i in range(2)
    ]
    db.add_all(raters)
    db.flush()
    rated = make_open_study(db, data, raters=raters, n_images=6, size=32, name="Rated study")
    rate(db, rated, raters, limit={"reader1": 4})
    empty = make_open_study(db, data, raters=raters[:1], n_images=2, size=32, name="Empty")
    db.commit()
    ids = {"rated": rated.id, "empty": empty.id}
    db.close()
    engine.dispose()
    monkeypatch.setenv("RADSAL_DATABASE_URL", url)
    monkeypatch.setenv("RADSAL_DATA_DIR", str(data))
    get_settings.cache_clear()
    yield ids
    get_settings.cache_clear()


@pytest.mark.slow
def test_export_and_analyze_commands(
    cli_env: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "long.csv"
    assert main(["export", str(cli_env["rated"]), "--format", "csv", "-o", str(out)]) == 0
    long = pd.read_csv(out)
    assert len(long) == (6 + 4) * 2
    capsys.readouterr()

    # By name, to stdout.
    assert main(["export", "Rated study", "--format", "mrmc"]) == 0
    mrmc = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(mrmc.columns) == ["reader", "case", "modality", "score"]

    assert main(["analyze", str(cli_env["rated"]), "--json", "--n-boot", "100"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["items"][0]["comparisons"][0]["rater_case"]["n"] == 10
    assert any("reader1 completed 4 of 6" in w for w in result["warnings"])

    report = tmp_path / "report.html"
    assert main(["analyze", "Rated study", "--n-boot", "100", "--report", str(report)]) == 0
    text = capsys.readouterr().out
    assert "Wilcoxon (Pratt)" in text and "reader1 completed 4 of 6" in text
    assert report.read_text().startswith("<!doctype html>")


def test_empty_and_missing_studies(
    cli_env: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(cli_env["empty"])]) == 0
    assert "nothing to analyse" in capsys.readouterr().out
    assert main(["analyze", "no such study"]) == 2
    assert "No study named" in capsys.readouterr().err
    assert main(["export", "424242", "--format", "json"]) == 2
    assert "does not exist" in capsys.readouterr().err
