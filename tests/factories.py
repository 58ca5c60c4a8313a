"""Test data without the generation pipeline: an OPEN study built from ORM rows and PNG files.

`make_open_study` writes plausible grayscale images (or copies given real ones into the
test's data directory), two arms backed by two fake checkpoints, their maps (raw float16 and
the fixed-size uint8 field raters' browsers colour, as the generation job stores them) and a
counterbalanced trial sequence per rater. Rater-flow, blinding, export and analysis tests can
then run without torch.
"""

from __future__ import annotations

import io
import secrets
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from app.models import (
    Arm,
    Checkpoint,
    Image,
    SaliencyMap,
    Study,
    StudyImage,
    StudyRater,
    StudyStatus,
    Trial,
    User,
)
from app.models.base import utcnow
from app.storage import Storage, sha256_hex

NO_FILE = "-"  # the stored path of a file `make_open_study(files=False)` did not write

DEFAULT_ITEMS: list[dict[str, object]] = [
    {
        "key": "highlight",
        "kind": "likert",
        "question": (
            "How well does this map highlight the image regions that support the finding?"
        ),
        "scale": 5,
        "anchors": ["Not at all", "Very well"],
        "required": True,
    },
    {
        "key": "preference",
        "kind": "preference",
        "question": "Which map explains the finding better?",
        "required": True,
    },
    {"key": "comment", "kind": "comment", "question": "Comment", "required": False},
]


def _png(array: np.ndarray) -> bytes:
    """PNG bytes without any text chunks (Pillow writes none unless asked)."""
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _synthetic_radiograph(rng: np.random.Generator, size: int) -> np.ndarray:
    """A chest-like grayscale picture: bright mediastinum, two dark lung fields, noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = 0.55 + 0.25 * yy
    for cx in (0.3, 0.7):
        lung = ((xx - cx) / 0.17) ** 2 + ((yy - 0.5) / 0.32) ** 2
        img -= 0.35 * np.exp(-(lung**2))
    img += 0.25 * np.exp(-(((xx - 0.5) / 0.07) ** 2))
    img += rng.normal(0.0, 0.03, img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def _saliency(rng: np.random.Generator, h: int, w: int, *, smooth: bool) -> np.ndarray:
    """A map in [0, 1]: Gaussian blobs over the lung fields; speckled like a plain gradient
    unless `smooth` (like an adversarially trained model's)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    m = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 3))):
        side = rng.choice([0.3, 0.7])
        cy, cx = rng.uniform(0.35, 0.7) * h, (side + rng.uniform(-0.08, 0.08)) * w
        sigma = rng.uniform(0.06, 0.12) * min(h, w)
        m += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    noise = rng.uniform(0.0, 1.0, m.shape).astype(np.float32)
    if not smooth:
        m = m * noise + 0.12 * rng.uniform(0.0, 1.0, m.shape).astype(np.float32) ** 3
    m -= m.min()
    return m / max(float(m.max()), 1e-6)


FIELD_SIZE = 256  # ml.explain.field.FIELD_SIZE: every map field of a study has this size


def _field_npy(m: np.ndarray) -> bytes:
    """The map as the generation job stores it for raters: a fixed-size uint8 .npy field."""
    h, w = m.shape
    rows = ((np.arange(FIELD_SIZE) + 0.5) * h / FIELD_SIZE).astype(int)
    cols = ((np.arange(FIELD_SIZE) + 0.5) * w / FIELD_SIZE).astype(int)
    buf = io.BytesIO()
    np.save(buf, np.rint(np.clip(m[np.ix_(rows, cols)], 0, 1) * 255).astype(np.uint8))
    return buf.getvalue()


def _add_image(db: Session, store: Storage, pixels: np.ndarray, name: str, label: int) -> Image:
    data = _png(pixels)
    display = store.put_content("images", data, ".png")
    npy = io.BytesIO()
    np.save(npy, (pixels.astype(np.float16) / 255)[None])
    # A random suffix keeps repeated factory calls in one database from colliding on sha256.
    image = Image(
        sha256=sha256_hex(data + uuid.uuid4().bytes),
        source_filename=name,
        modality="DX",
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        channels=1,
        display_path=display,
        thumb_path=display,
        input_path=store.put_random("images", npy.getvalue(), ".npy"),
        window_center=None,
        window_width=None,
        labels={"pneumonia": label},
        meta={},
    )
    db.add(image)
    return image


def _placeholder_image(db: Session, name: str, size: int, label: int) -> Image:
    """An image row without files: enough for exports and analysis, which never read pixels."""
    image = Image(
        sha256=secrets.token_hex(32),
        source_filename=name,
        modality="DX",
        width=size,
        height=size,
        channels=1,
        display_path=NO_FILE,
        thumb_path=NO_FILE,
        input_path=NO_FILE,
        labels={"pneumonia": label},
        meta={},
    )
    db.add(image)
    return image


def _fake_checkpoint(db: Session, name: str, *, dual_bn: bool, mode: str) -> Checkpoint:
    ckpt = Checkpoint(
        name=name,
        arch="resnet18",
        dual_bn=dual_bn,
        num_classes=1,
        class_names=["pneumonia"],
        in_channels=1,
        image_size=128,
        normalize={"mean": [0.5], "std": [0.25]},
        train_meta={"mode": mode},
        sha256=uuid.uuid4().hex + uuid.uuid4().hex,
        file_path=f"checkpoints/fake/{uuid.uuid4().hex}.pt",
        size_bytes=0,
    )
    db.add(ckpt)
    return ckpt


def make_open_study(
    db: Session,
    data_dir: Path,
    *,
    raters: list[User],
    n_images: int = 4,
    allow_back: bool = False,
    images: list[Path] | None = None,
    seed: int = 0,
    size: int = 64,
    name: str = "Pneumonia saliency study",
    instructions: str = (
        "Each trial shows one chest X-ray and two saliency maps, A and B, from two models. "
        "Score how well each map highlights the regions that support the finding, then "
        "say which map you prefer."
    ),
    files: bool = True,
) -> Study:
    """An OPEN two-arm study with maps and a trial sequence for each rater (flushed, not
    committed). `images` (real PNGs) replace the synthetic radiographs when given.

    `files=False` writes no image or map files and no map rows (the paths are `NO_FILE`): the
    same design, fast enough for thousands of cases, for exports, analysis and benchmarks."""
    rng = np.random.default_rng(seed)
    store = Storage(Path(data_dir))
    study = Study(
        name=name,
        instructions=instructions,
        status=StudyStatus.open.value,
        seed=seed,
        items=[dict(item) for item in DEFAULT_ITEMS],
        saliency={"colormap": "hot", "opacity": 0.6},
        allow_back=allow_back,
        repeat_fraction=0.0,
        opened_at=utcnow(),
        design_frozen_at=None,  # frozen by the first rating
    )
    db.add(study)
    ckpts = [
        _fake_checkpoint(db, "standard-resnet18", dual_bn=False, mode="standard"),
        _fake_checkpoint(db, "dualbn-resnet18", dual_bn=True, mode="dual_bn"),
    ]
    db.flush()
    arms = [
        Arm(
            study_id=study.id,
            checkpoint_id=ckpts[0].id,
            bn_route=None,
            method="gradient",
            label="standard",
            position=0,
        ),
        Arm(
            study_id=study.id,
            checkpoint_id=ckpts[1].id,
            bn_route="clean",
            method="gradient",
            label="dual-BN clean",
            position=1,
        ),
    ]
    db.add_all(arms)

    sources = list(images or [])
    count = len(sources) if sources else n_images
    cases: list[Image] = []
    for i in range(count):
        if not files:
            cases.append(_placeholder_image(db, f"synthetic_{seed}_{i}.png", size, label=i % 2))
            continue
        if sources:
            pixels = np.asarray(PILImage.open(sources[i]).convert("L"))
            name_i = sources[i].name
        else:
            pixels = _synthetic_radiograph(rng, size)
            name_i = f"synthetic_{seed}_{i}.png"
        cases.append(_add_image(db, store, pixels, name_i, label=i % 2))
    db.flush()

    for pos, case in enumerate(cases):
        db.add(StudyImage(study_id=study.id, image_id=case.id, position=pos))
        h, w = case.height, case.width
        for arm in arms if files else []:
            m = _saliency(rng, h, w, smooth=arm.position == 1)
            raw = io.BytesIO()
            np.save(raw, m.astype(np.float16))
            db.add(
                SaliencyMap(
                    arm_id=arm.id,
                    image_id=case.id,
                    target="pneumonia",
                    raw_path=store.put_random("maps", raw.getvalue(), ".npy"),
                    field_path=store.put_random("maps", _field_npy(m), ".npy"),
                    prediction={"pneumonia": float(rng.uniform(0.2, 0.9))},
                    provenance={"method": "gradient", "factory": True},
                )
            )
    for r_index, rater in enumerate(raters):
        db.add(StudyRater(study_id=study.id, user_id=rater.id))
        order = np.random.default_rng(seed * 1000 + r_index).permutation(len(cases))
        for pos, case_index in enumerate(order):
            # Alternate sides (offset per rater): each arm is on the left in half the trials.
            left, right = (arms[0], arms[1]) if (pos + r_index) % 2 == 0 else (arms[1], arms[0])
            db.add(
                Trial(
                    token=secrets.token_urlsafe(18),
                    study_id=study.id,
                    rater_id=rater.id,
                    image_id=cases[int(case_index)].id,
                    left_arm_id=left.id,
                    right_arm_id=right.id,
                    position=pos,
                )
            )
    db.flush()
    return study


def rating_payload(**overrides: object) -> dict[str, object]:
    """A complete, valid answer for a default-items study (override any field)."""
    body: dict[str, object] = {
        "left_score": 4,
        "right_score": 2,
        "preference": "left",
        "comment": "",
        "active_ms": 5200,
        "total_ms": 6100,
        "request_id": uuid.uuid4().hex,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def builder_form(study: Study, **over: Any) -> dict[str, Any]:
    """The study builder's form fields for a valid two-arm draft on ``study``'s arms and
    images (an open study made by :func:`make_open_study` serves as the catalogue)."""
    arms = study.arms
    form: dict[str, Any] = {
        "name": "Builder study",
        "instructions": "Look.",
        "image_ids": [str(si.image_id) for si in study.images],
        "raters": [],
        "arm0_checkpoint": str(arms[0].checkpoint_id),
        "arm0_method": "gradient",
        "arm1_checkpoint": str(arms[1].checkpoint_id),
        "arm1_route": "clean",
        "arm1_method": "gradient",
        "seed": "1",
        "repeat_fraction": "0",
        "target": "predicted",
        "postprocess": "clip_std",
        "colormap": "hot",
        "opacity": "0.5",
        "item_question": "Useful?",
        "item_scale": "5",
        "item_anchor_low": "No",
        "item_anchor_high": "Yes",
    }
    form.update(over)
    return form
