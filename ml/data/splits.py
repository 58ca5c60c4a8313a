"""Train/val/test splits that a map study can trust: patient-disjoint, stratified, masks held out.

A CSV without a ``split`` column is split here. Three rules, each closing a trap a map study
fell into with a plain random split:

* **patient-disjoint**: the unit drawn is the group (``patient_id`` when present, else the
  image), so one patient's images never sit on both sides;
* **stratified by label**: each label stratum (class name, or the pattern of label columns)
  contributes its share of groups to val and test (cumulative rounding across strata, so the
  totals are exact and small strata are not all rounded into train);
* **masks held out**: images with a ground-truth mask or box are the only ones on which map
  metrics mean anything, so groups holding one go to a held-out split (``mask_split``), where
  they count towards that split's share; with masks on nearly every image (synthetic data)
  ``auto`` falls back to the plain stratified split and says so.

The assignment depends only on the group keys, the seed and the fractions (groups are ordered
by a seeded hash, not by row order), so ``evaluate`` and ``saliency`` rebuild exactly the split
a checkpoint was trained with from what the checkpoint records (:func:`split_options`); the
record's ``digest`` lets them check that they did.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ml.data.errors import DatasetError

__all__ = [
    "MASK_SPLITS",
    "group_split",
    "heldout_split",
    "split_digest",
    "split_mismatch",
    "split_options",
]

MASK_SPLITS = ("auto", "val", "test", "none")


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0:
        raise DatasetError("val and test fractions must each be in [0, 1)")
    if val_fraction + test_fraction >= 1.0:
        raise DatasetError(
            f"val fraction {val_fraction} + test fraction {test_fraction} leave nothing to train on"
        )


def group_split(
    keys: Sequence[str],
    strata: Sequence[str],
    masked: Sequence[bool],
    *,
    val_fraction: float,
    test_fraction: float = 0.0,
    seed: int = 0,
    mask_split: str = "auto",
    stratify: bool = True,
) -> tuple[list[str], dict[str, Any]]:
    """One split name per row, plus a record of how it was drawn (see module doc).

    ``keys`` are group keys (patient ids), ``strata`` label strata and ``masked`` whether the
    row has a ground-truth mask, all one per row.
    """
    _check_fractions(val_fraction, test_fraction)
    if not stratify:
        strata = [""] * len(keys)
    if mask_split not in MASK_SPLITS:
        raise DatasetError(f"unknown mask split {mask_split!r}; choose from {MASK_SPLITS}")
    votes: dict[str, Counter[str]] = {}
    group_masked: dict[str, bool] = {}
    for key, stratum, has_mask in zip(keys, strata, masked, strict=True):
        votes.setdefault(key, Counter())[stratum] += 1
        group_masked[key] = group_masked.get(key, False) or bool(has_mask)
    # A patient with images in two classes is drawn with the stratum most of them are in.
    stratum_of = {k: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for k, c in votes.items()}
    target = mask_split if mask_split != "auto" else ("test" if test_fraction > 0 else "val")
    n_masked = sum(group_masked.values())
    n_heldout = round(len(votes) * val_fraction) + round(len(votes) * test_fraction)
    note = None
    use_masks = target != "none" and n_masked > 0
    if use_masks and mask_split == "auto" and n_masked > n_heldout:
        use_masks = False
        note = (
            f"{n_masked} of {len(votes)} groups have masks, more than the held-out share "
            f"({n_heldout}); masks ignored for the split (pass --mask-split val|test to force)"
        )

    def order(key: str) -> str:
        return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()

    assign: dict[str, str] = {}
    done = 0
    for stratum in sorted(set(stratum_of.values())):
        groups = sorted((k for k, s in stratum_of.items() if s == stratum), key=order)
        before, done = done, done + len(groups)
        quota = {
            "val": round(done * val_fraction) - round(before * val_fraction),
            "test": round(done * test_fraction) - round(before * test_fraction),
        }
        if use_masks:
            for k in groups:
                if group_masked[k]:
                    assign[k] = target
                    quota[target] -= 1
            # More masked groups than the mask split's share: the surplus comes out of the
            # other held-out split, so train keeps its share of every stratum.
            other = "val" if target == "test" else "test"
            if quota[target] < 0:
                quota[other] = max(quota[other] + quota[target], 0)
        rest = iter(k for k in groups if k not in assign)
        for split in ("val", "test"):
            for _ in range(max(quota[split], 0)):
                pick = next(rest, None)
                if pick is not None:
                    assign[pick] = split
    splits = [assign.get(k, "train") for k in keys]
    record: dict[str, Any] = {
        "method": "group",
        "stratified": stratify,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "seed": seed,
        "mask_split": target if use_masks else "none",
        "requested_mask_split": mask_split,
        "groups": dict(Counter(assign.get(k, "train") for k in votes)),
    }
    if note:
        record["note"] = note
    return splits, record


def split_digest(assignments: Sequence[tuple[str, str]]) -> str:
    """sha256 over sorted (relative path, split) pairs: equal digests mean equal splits."""
    text = "\n".join(f"{p}\t{s}" for p, s in sorted(assignments))
    return hashlib.sha256(text.encode()).hexdigest()


def heldout_split(train_meta: Mapping[str, Any] | None) -> str:
    """The split a checkpoint was *not* selected on when it has one (test), else val.

    Checkpoints from before splits were recorded name none; val is then the only safe guess
    that exists in every data set.
    """
    record = (train_meta or {}).get("split") or {}
    name = record.get("heldout") if isinstance(record, Mapping) else None
    return str(name) if name in ("val", "test") else "val"


def split_options(train_meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """``build_datasets`` keyword arguments that rebuild the split a checkpoint was trained on."""
    meta = dict(train_meta or {})
    record = meta.get("split") if isinstance(meta.get("split"), Mapping) else None
    if record is None:
        # Written before splits were recorded: the split then was hash-ordered groups without
        # strata or masks, which is exactly a one-stratum split with masks ignored.
        record = {"stratified": False, "requested_mask_split": "none"}
    assert isinstance(record, Mapping)
    return {
        "stratify": bool(record.get("stratified", True)),
        "label_columns": meta.get("label_columns"),
        "uncertainty": str(meta.get("uncertainty", "zeros")),
        "val_fraction": float(record.get("val_fraction", meta.get("val_fraction", 0.2))),
        "test_fraction": float(record.get("test_fraction", meta.get("test_fraction", 0.0))),
        "mask_split": str(record.get("requested_mask_split", meta.get("mask_split", "auto"))),
        "seed": int(record.get("seed", meta.get("seed", 0))),
    }


def split_mismatch(
    train_meta: Mapping[str, Any] | None, rebuilt: Mapping[str, Any] | None
) -> str | None:
    """A sentence when the rebuilt split differs from the one the checkpoint recorded.

    None when they agree or the checkpoint recorded no digest (older checkpoints).
    """
    record = (train_meta or {}).get("split")
    want = record.get("digest") if isinstance(record, Mapping) else None
    got = (rebuilt or {}).get("digest")
    if not want or want == got:
        return None
    return (
        "the data set's split differs from the one this checkpoint was trained with (files "
        "added, removed or moved, or another data set): held-out images may have been seen "
        "in training"
    )
