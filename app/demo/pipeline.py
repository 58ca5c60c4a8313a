"""`radsal demo`: build a complete, rateable study from nothing, step by step, resumably.

A newcomer runs one command and ends up rating a real study in the browser. Every step uses
the production code paths (ml training and evaluation, checkpoint and image ingest, the study
designer, the saliency worker), so the demo is also an end-to-end smoke test of the product.

Each step's inputs and outputs are recorded in ``<data dir>/demo.json``. A re-run reuses a step
whose inputs are unchanged and whose outputs still exist, so an interrupted demo resumes and a
finished one starts serving within seconds. ``reset_demo`` starts over (SQLite only: it deletes
the database file, and we never drop a server database on a user's behalf).

The demo writes ``demo.json`` with the demo accounts' passwords (mode 0600) so a re-run can
print them again; that file is a convenience of a local demo, not a pattern for production.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.demo.data import choose_study_rows, fingerprint, prepare_dataset

MANIFEST_NAME = "demo.json"
DEMO_DIR_NAME = "demo"
MANIFEST_VERSION = 1
# Files and folders the app itself keeps in the data directory (all referenced by the DB).
STORE_DIRS = ("images", "checkpoints", "maps", "masks")
RATER_INSTRUCTIONS = (
    "Each trial shows one image and two saliency maps, A and B, computed by two different "
    "models for the same finding. Score how well each map highlights the image regions that "
    "support the finding (1 = not at all, 5 = precisely), then say which map you prefer. "
    "You can stop at any time and resume where you left off."
)


class DemoError(RuntimeError):
    """A demo step cannot proceed; the message tells the user what to do."""


# ----------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class DemoOptions:
    """What to build. The defaults target a few minutes on a 2-core CPU."""

    data: Path | None = None  # a folder or CSV of the user's images; None: synthetic lesions
    epochs: int = 8
    image_size: int = 64
    n_train: int = 300  # synthetic training images (validation and test sets scale with it)
    n_images: int = 48  # cases in the study
    raters: int = 6
    arch: str = "resnet_tiny"
    batch_size: int = 16
    # A few hundred steps in all: a higher rate than ml's default 1e-3 and BN statistics that
    # follow quickly (the paper's momentum 0.01 needs thousands of steps to settle).
    lr: float = 3e-3
    bn_momentum: float = 0.1
    seed: int = 0
    # Torch CPU threads. One by default: these tiny models gain little from a second thread,
    # and two threads spin-waiting on a busy machine run ~10x slower (docs/benchmarks.md#demo).
    threads: int = 1
    # L-inf PGD budget of the dual-BN model's training and of both models' evaluation.
    attack_eps: float = 2 / 255
    attack_steps: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        for name in (
            "epochs",
            "image_size",
            "n_train",
            "n_images",
            "raters",
            "batch_size",
            "threads",
        ):
            if getattr(self, name) < 1:
                raise DemoError(f"--{name.replace('_', '-')} must be at least 1.")
        if self.image_size < 16:
            raise DemoError("--image-size must be at least 16 pixels.")


@dataclass(frozen=True)
class Login:
    """One account to print: a password login (admin, researcher) or a rater's invite link."""

    username: str
    role: str
    password: str | None = None
    invite_url: str | None = None
    note: str = ""


@dataclass
class DemoResult:
    """What the demo built and how long each step took (seconds; 0 when reused)."""

    study_id: int
    study_name: str
    base_url: str
    logins: list[Login]
    evaluation: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)
    attribution: str = ""


# ---------------------------------------------------------------------------------- manifest


def manifest_path(settings: Settings) -> Path:
    return settings.data_dir / MANIFEST_NAME


def demo_dir(settings: Settings) -> Path:
    return settings.data_dir / DEMO_DIR_NAME


def load_manifest(settings: Settings) -> dict[str, Any]:
    """The recorded demo, or an empty one (also when the file is from another version)."""
    path = manifest_path(settings)
    if not path.is_file():
        return {"version": MANIFEST_VERSION, "steps": {}}
    data = json.loads(path.read_text())
    if data.get("version") != MANIFEST_VERSION or not isinstance(data.get("steps"), dict):
        return {"version": MANIFEST_VERSION, "steps": {}}
    return dict(data)


def save_manifest(settings: Settings, manifest: Mapping[str, Any]) -> None:
    """Write atomically and owner-only: the file holds the demo accounts' passwords."""
    path = manifest_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=2, default=str)  # keep step order
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------- progress


class StepLog:
    """Numbered steps with timings on a text stream; the heavy steps add their own tqdm bars."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.index = 0
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    @contextmanager
    def step(self, name: str, title: str) -> Iterator[None]:
        self.index += 1
        self.say(f"[{self.index}/{self.total}] {title}")
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.timings[name] = round(seconds, 2)
        self.say(f"      done in {seconds:.1f} s")

    def reuse(self, name: str, title: str) -> None:
        self.index += 1
        self.timings[name] = 0.0
        self.reused.append(name)
        self.say(f"[{self.index}/{self.total}] {title}: reused from an earlier run")


class Steps:
    """Runs a step unless the manifest says it was built from the same inputs and still exists."""

    def __init__(self, settings: Settings, manifest: dict[str, Any], log: StepLog) -> None:
        self.settings = settings
        self.manifest = manifest
        self.log = log

    def run(
        self,
        name: str,
        title: str,
        key: Mapping[str, Any],
        build: Callable[[], dict[str, Any]],
        still_valid: Callable[[dict[str, Any]], bool],
    ) -> dict[str, Any]:
        entry = self.manifest["steps"].get(name)
        fp = fingerprint(key)
        if entry and entry.get("key") == fp and still_valid(entry["result"]):
            self.log.reuse(name, title)
            return dict(entry["result"])
        with self.log.step(name, title):
            result = build()
        self.manifest["steps"][name] = {
            "key": fp,
            "result": result,
            "seconds": self.log.timings[name],
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        save_manifest(self.settings, self.manifest)
        return result


# ---------------------------------------------------------------------------------- the build

STEP_COUNT = 10


def build_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    base_url: str,
    out: TextIO | None = None,
) -> DemoResult:
    """Build (or resume) the demo study on `settings`' database and data directory."""
    import torch

    from app.db import make_engine, make_sessionmaker
    from app.migrate import upgrade_database
    from ml.device import resolve_device

    try:
        device = str(resolve_device(settings.device))
    except ValueError as exc:  # RADSAL_DEVICE=cuda on a machine without CUDA
        raise DemoError(str(exc)) from None
    torch.set_num_threads(options.threads)
    out = out or sys.stderr
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(settings)
    log = StepLog(STEP_COUNT, out)
    steps = Steps(settings, manifest, log)
    work = demo_dir(settings)

    dataset = steps.run(
        "dataset",
        _dataset_title(options),
        _dataset_key(options),
        lambda: prepare_dataset(
            work / "dataset",
            source=options.data,
            n_train=options.n_train,
            n_test=max(options.n_images, options.n_train // 5),
            image_size=options.image_size,
            seed=options.seed,
        ),
        lambda r: Path(r["csv"]).is_file(),
    )
    trained: dict[str, dict[str, Any]] = {}
    attack = f"PGD L-inf eps {options.attack_eps * 255:.0f}/255, {options.attack_steps} steps"
    for arm, mode, label in (
        ("standard", "standard", "standard model (clean images)"),
        ("dual", "dual", f"dual-BN model (clean + adversarial images, {attack})"),
    ):
        key = {
            "data": dataset["fingerprint"],
            "mode": mode,
            "eps": options.attack_eps,
            "steps": options.attack_steps,
            **_train_key(options),
        }
        trained[arm] = steps.run(
            f"train_{arm}",
            f"Training the {label}: {options.arch}, {options.image_size} px, "
            f"{options.epochs} epoch(s) on {device}",
            key,
            functools.partial(train_model, options, dataset, mode, work / "runs" / arm, device),
            lambda r: Path(r["checkpoint"]).is_file(),
        )
    evaluation = steps.run(
        "evaluate",
        f"Evaluating both models: validation AUROC clean and under attack ({attack})",
        {
            "standard": trained["standard"]["sha256"],
            "dual": trained["dual"]["sha256"],
            "eps": options.attack_eps,
            "steps": options.attack_steps,
        },
        lambda: evaluate_models(options, dataset, trained, work / "eval", device),
        lambda r: True,
    )

    engine = make_engine(settings.resolved_database_url())
    try:
        with log.step("database", "Preparing the database (migrations)"):
            upgrade_database(engine)
        factory = make_sessionmaker(engine)
        with log.step("accounts", "Creating the admin, researcher and rater accounts"):
            logins = ensure_accounts(factory, settings, manifest, options, base_url)
            save_manifest(settings, manifest)
        ckpts = steps.run(
            "checkpoints",
            "Importing both checkpoints into the app (verified, weights only)",
            {"standard": trained["standard"]["sha256"], "dual": trained["dual"]["sha256"]},
            lambda: import_checkpoints(factory, settings, trained),
            lambda r: _rows_exist(factory, "checkpoints", r["ids"].values()),
        )
        images = steps.run(
            "images",
            f"Importing {options.n_images} study images",
            {"data": dataset["fingerprint"], "n": options.n_images, "seed": options.seed},
            lambda: import_images(factory, settings, dataset, options),
            lambda r: _rows_exist(factory, "images", r["ids"]),
        )
        study = steps.run(
            "study",
            f"Creating the study: {len(images['ids'])} cases x {options.raters} raters, "
            "standard vs dual-BN gradient maps",
            {"ckpts": ckpts["ids"], "images": images["ids"], "raters": options.raters},
            lambda: create_demo_study(factory, settings, ckpts, images, dataset, options),
            lambda r: _rows_exist(factory, "studies", [r["id"]]),
        )
        with log.step("maps", "Generating the saliency maps and opening the study"):
            maps = generate_and_open(factory, settings, study["id"], progress=options.progress)
            log.say(f"      {maps['maps']} maps ({maps['computed']} computed now)")
    finally:
        engine.dispose()

    manifest["last_run"] = {
        "timings": log.timings,
        "reused": log.reused,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    save_manifest(settings, manifest)
    return DemoResult(
        study_id=int(study["id"]),
        study_name=str(study["name"]),
        base_url=base_url,
        logins=logins,
        evaluation=evaluation,
        timings=dict(log.timings),
        reused=list(log.reused),
        attribution=str(dataset.get("attribution", "")),
    )


# ------------------------------------------------------------------------------ step 1: data


def _dataset_title(options: DemoOptions) -> str:
    if options.data is None:
        return (
            f"Generating the synthetic lesion data set ({options.n_train} training images, "
            f"{options.image_size} px, with lesion masks)"
        )
    return f"Preparing your data set from {options.data}"


def _dataset_key(options: DemoOptions) -> dict[str, Any]:
    if options.data is None:
        return {
            "source": "synthetic",
            "n_train": options.n_train,
            "n_images": options.n_images,
            "image_size": options.image_size,
            "seed": options.seed,
        }
    src = options.data.resolve()
    return {"source": str(src), "mtime": src.stat().st_mtime_ns, "seed": options.seed}


# -------------------------------------------------------------------------- steps 2-4: ml


def _train_key(options: DemoOptions) -> dict[str, Any]:
    return {
        "arch": options.arch,
        "epochs": options.epochs,
        "image_size": options.image_size,
        "batch_size": options.batch_size,
        "lr": options.lr,
        "bn_momentum": options.bn_momentum,
        "seed": options.seed,
    }


def train_model(
    options: DemoOptions, dataset: Mapping[str, Any], mode: str, out_dir: Path, device: str
) -> dict[str, Any]:
    """Train one model with ml's real training loop; returns the best checkpoint and its hash.

    The dual-BN model trains against a short PGD (``attack_steps``) with the same budget the
    evaluation attacks with, so "robust" in the summary means robust to what was measured.
    """
    from ml.training import TrainConfig, train

    config = TrainConfig(
        data=str(dataset["csv"]),
        out=str(out_dir),
        mode=mode,
        arch=options.arch,
        epochs=options.epochs,
        image_size=options.image_size,
        batch_size=options.batch_size,
        lr=options.lr,
        bn_momentum=options.bn_momentum,
        augment="none",
        eps=options.attack_eps,
        steps=options.attack_steps,
        seed=options.seed,
        device=device,
    )
    result = train(config, progress=options.progress)
    best = Path(result.best_path)
    last = result.history[-1] if result.history else {}
    return {
        "checkpoint": str(best),
        "sha256": hashlib.sha256(best.read_bytes()).hexdigest(),
        "val_auroc": last.get("val_auroc"),
        "epochs": len(result.history),
    }


def evaluate_models(
    options: DemoOptions,
    dataset: Mapping[str, Any],
    trained: Mapping[str, Mapping[str, Any]],
    out_dir: Path,
    device: str,
) -> dict[str, Any]:
    """Validation AUROC of both models, clean and under PGD (ml.evaluation; reports and ROC
    plots land in ``out_dir``)."""
    from ml.evaluation import evaluate_checkpoint

    out: dict[str, Any] = {}
    for arm, info in trained.items():
        report = evaluate_checkpoint(
            info["checkpoint"],
            dataset["csv"],
            split="val",
            eps=[options.attack_eps],
            norm="linf",
            steps=options.attack_steps,
            out_dir=out_dir / arm,
            n_bootstrap=200,
            progress=options.progress,
            device=device,
            seed=options.seed,
        )
        out[arm] = {**summarize_report(report, options.attack_eps), "report": str(out_dir / arm)}
    return out


def summarize_report(report: Mapping[str, Any], eps: float) -> dict[str, Any]:
    """AUROC through the clean BN route (the paper's choice), clean and under attack at eps."""
    clean = report["routes"]["clean"]
    attacked = next((r for r in clean["robust"] if abs(r["eps"] - eps) < 1e-12), None)
    return {
        "auroc_clean": clean["macro_auroc"],
        "auroc_attack": attacked["macro_auroc"] if attacked else None,
        "accuracy_clean": clean["accuracy"],
        "accuracy_attack": attacked["accuracy"] if attacked else None,
    }


# --------------------------------------------------------------------------- step 6: users


def ensure_accounts(
    factory: sessionmaker[Session],
    settings: Settings,
    manifest: dict[str, Any],
    options: DemoOptions,
    base_url: str,
) -> list[Login]:
    """Admin and researcher with passwords, raters with fresh invite links (idempotent)."""
    import secrets

    from sqlalchemy import select

    from app.auth.passwords import verify_password
    from app.models import User
    from app.services.accounts.users import create_user, ensure_admin, issue_invite

    saved: dict[str, str] = manifest.setdefault("passwords", {})
    logins: list[Login] = []
    with factory.begin() as db:
        admin, plain = ensure_admin(db, "admin", saved.get("admin"))
        if plain:
            saved["admin"] = plain
        logins.append(_password_login(admin, saved.get(admin.username), verify_password))
        researcher = db.scalar(select(User).where(User.username == "researcher"))
        if researcher is None:
            saved["researcher"] = saved.get("researcher") or secrets.token_urlsafe(12)
            researcher, _ = create_user(
                db,
                actor=admin,
                username="researcher",
                role="researcher",
                display_name="Demo researcher",
                password=saved["researcher"],
            )
        logins.append(_password_login(researcher, saved.get("researcher"), verify_password))
        for n in range(1, options.raters + 1):
            username = f"rater{n}"
            rater = db.scalar(select(User).where(User.username == username))
            if rater is None:
                rater, issued = create_user(
                    db,
                    actor=admin,
                    username=username,
                    role="rater",
                    display_name=f"Demo rater {n}",
                    invite_hours=settings.invite_hours,
                )
            elif rater.password_hash is None and rater.is_active:
                issued = issue_invite(db, actor=admin, user=rater, hours=settings.invite_hours)
            else:
                issued = None
            if issued is not None:
                logins.append(Login(username, "rater", invite_url=issued.url(base_url)))
            else:
                logins.append(
                    Login(username, "rater", note="already joined: log in with their password")
                )
    return logins


def _password_login(
    user: Any, password: str | None, verify: Callable[[str | None, str], bool]
) -> Login:
    if password and verify(user.password_hash, password):
        return Login(user.username, user.role, password=password)
    return Login(user.username, user.role, note="password was changed since the demo set it")


# ----------------------------------------------------------------------- steps 7-9: the app


def _rows_exist(factory: sessionmaker[Session], table: str, ids: Iterable[Any]) -> bool:
    """Whether every id is still in `table` (someone may have deleted a demo object)."""
    from sqlalchemy import func, select

    from app.models import Checkpoint, Image, Study

    column = {"checkpoints": Checkpoint.id, "images": Image.id, "studies": Study.id}[table]
    wanted = {int(i) for i in ids}
    if not wanted:
        return False
    with factory() as db:
        found = db.scalar(select(func.count(column)).where(column.in_(wanted)))
    return found == len(wanted)


def _admin(db: Session) -> Any:
    from sqlalchemy import select

    from app.models import User

    return db.scalar(select(User).where(User.username == "admin"))


def import_checkpoints(
    factory: sessionmaker[Session], settings: Settings, trained: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    from app.services.catalog.checkpoints import import_checkpoint

    names = {"standard": "Demo standard model", "dual": "Demo dual-BN adversarial model"}
    ids: dict[str, int] = {}
    with factory.begin() as db:
        actor = _admin(db)
        for arm, info in trained.items():
            path = Path(info["checkpoint"])
            ckpt, _dup = import_checkpoint(
                db,
                settings,
                data=path.read_bytes(),
                filename=path.name,
                name=names[arm],
                actor=actor,
            )
            ids[arm] = ckpt.id
    return {"ids": ids}


def import_images(
    factory: sessionmaker[Session],
    settings: Settings,
    dataset: Mapping[str, Any],
    options: DemoOptions,
) -> dict[str, Any]:
    from app.services.catalog.images import import_image_paths

    with Path(dataset["csv"]).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen = choose_study_rows(rows, options.n_images, options.seed)
    if len(chosen) < options.n_images:
        raise DemoError(
            f"Only {len(chosen)} test/val images are available for the study; "
            f"--n-images asks for {options.n_images}."
        )
    classes = list(dataset["classes"])
    paths = [Path(r["path"]) for r in chosen]
    labels = [{c: int(c == r["label"]) for c in classes} for r in chosen]
    masks = [Path(r["mask"]) if r["mask"] else None for r in chosen]
    with factory.begin() as db:
        images = import_image_paths(db, settings, paths, labels, masks, _admin(db))
        ids = [int(image.id) for image in images]
    return {"ids": ids}


def create_demo_study(
    factory: sessionmaker[Session],
    settings: Settings,
    ckpts: Mapping[str, Any],
    images: Mapping[str, Any],
    dataset: Mapping[str, Any],
    options: DemoOptions,
) -> dict[str, Any]:
    from app.services.study.studies import create_study

    # Raters see the study name: it must not hint at the arms (blinding).
    name = "Demo reader study: saliency maps"
    instructions = RATER_INSTRUCTIONS
    if dataset.get("attribution"):
        instructions += "\n\n" + str(dataset["attribution"])
    spec = {
        "name": name,
        "instructions": instructions,
        "image_ids": list(images["ids"]),
        "arms": [
            {"checkpoint_id": ckpts["ids"]["standard"], "method": "gradient", "label": "standard"},
            {
                "checkpoint_id": ckpts["ids"]["dual"],
                "bn_route": "clean",
                "method": "gradient",
                "label": "dual-BN clean",
            },
        ],
        "raters": [f"rater{n}" for n in range(1, options.raters + 1)],
        "seed": options.seed,
    }
    with factory.begin() as db:
        study = create_study(db, spec=spec, actor=_admin(db))
        return {"id": int(study.id), "name": name}


def generate_and_open(
    factory: sessionmaker[Session],
    settings: Settings,
    study_id: int,
    *,
    progress: bool,
) -> dict[str, Any]:
    """Queue the maps the study still lacks, run the worker in this process, open the study.

    Resumable: after a crash the study is still "generating" and only missing maps are queued.
    """
    from tqdm import tqdm

    from app.models import Job, JobStatus, Study, StudyStatus
    from app.services.maps.jobs import enqueue_generation
    from app.services.study.studies import map_counts, open_study
    from app.worker import run_pending

    with factory.begin() as db:
        study = db.get(Study, study_id)
        if study is None:
            raise DemoError(f"Study {study_id} disappeared; run `radsal demo --reset`.")
        if study.status == StudyStatus.open.value:
            have, _ = map_counts(db, study)
            return {"maps": have, "computed": 0}
        job_id = enqueue_generation(db, study, _admin(db), batch_size=settings.batch_size).id
    with tqdm(desc="      maps", unit="map", disable=not progress, leave=False) as bar:

        def report(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        computed = run_pending(factory, settings, progress=report)
    with factory.begin() as db:
        job = db.get(Job, job_id)
        if job is not None and job.status == JobStatus.failed.value:
            raise DemoError(f"Saliency generation failed: {job.error}")
        study = db.get(Study, study_id)
        assert study is not None
        open_study(db, study, _admin(db))
        have, _ = map_counts(db, study)
    return {"maps": have, "computed": computed}


# ---------------------------------------------------------------------------------- reset


def reset_demo(settings: Settings) -> list[Path]:
    """Delete the demo's artefacts and the SQLite database; refuse any server database."""
    url = settings.resolved_database_url()
    if not url.startswith("sqlite"):
        raise DemoError(
            "--reset deletes the database, so it only works on the embedded SQLite default; "
            "this installation uses a database server. Drop it yourself if you mean it."
        )
    data = settings.data_dir
    targets = [manifest_path(settings), demo_dir(settings)]
    targets += [data / d for d in STORE_DIRS]
    db_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
    if db_file is not None:
        targets += [db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm")]
    removed = []
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target)
            removed.append(target)
        elif target.exists():
            target.unlink()
            removed.append(target)
    return removed


# --------------------------------------------------------------------------------- summary


def format_summary(result: DemoResult) -> str:
    """What the user needs next: the URL, the logins, the invite links, the numbers."""
    names = {"standard": "standard model", "dual": "dual-BN model"}
    lines = [
        "",
        f"radsal demo is ready: study #{result.study_id} '{result.study_name}' is open.",
        "",
        f"  Open {result.base_url}/login and log in as:",
    ]
    for login in result.logins:
        if login.password:
            lines.append(f"    {login.role:<11} {login.username:<11} password {login.password}")
        elif not login.invite_url:
            lines.append(f"    {login.role:<11} {login.username:<11} ({login.note})")
    invites = [x for x in result.logins if x.invite_url]
    if invites:
        lines += ["", "  Raters: open your invite link, choose a password, start rating:"]
        lines += [f"    {x.username:<11} {x.invite_url}" for x in invites]
    if result.evaluation:
        lines += ["", "  Models (validation AUROC, clean / under attack):"]
        for arm in sorted(result.evaluation, key=lambda a: (a != "standard", a)):
            numbers = result.evaluation[arm]
            lines.append(
                f"    {names.get(arm, arm):<15} {_num(numbers.get('auroc_clean'))} / "
                f"{_num(numbers.get('auroc_attack'))}"
            )
    built = [f"{k} {v:.0f} s" for k, v in result.timings.items() if v >= 0.5]
    total = sum(result.timings.values())
    lines += ["", f"  Built in {total:.0f} s" + (f" ({', '.join(built)})." if built else ".")]
    if result.reused:
        lines.append(f"  Reused from an earlier run: {', '.join(result.reused)}.")
    if result.attribution:
        lines += ["", f"  {result.attribution}"]
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{float(value):.3f}" if isinstance(value, int | float) else "n/a"
