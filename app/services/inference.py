"""The one bridge from the app to ``ml/``.

Every app service or route that needs the model side (checkpoints, image decoding, the saliency
pipeline, the lists of methods/colormaps/post-processing modes) goes through this module, so the
app's dependency on ``ml`` is one small surface instead of seven scattered imports. ``ml``
pulls in ``torch`` and ``captum`` (seconds of start-up and a lot of memory); the imports below
are therefore inside the functions, so the web server starts without them and only the first
request (or worker task) that actually needs the model side pays for them. The choice lists
(:func:`saliency_methods`, :func:`colormaps`, :func:`postprocess_modes`) come from the
torch-free ``ml.explain.choices`` and are cheap to call anywhere, even at import time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing only: never imported at run time
    import numpy as np
    from torch import nn

    from ml.checkpoint import LoadedCheckpoint


@dataclass(frozen=True)
class MapResult:
    """One image's map from the pipeline, in plain types the app stores as it is."""

    raw_npy: bytes  # float16 .npy at model-input resolution, not post-processed
    field_npy: bytes  # uint8 .npy map field, one fixed size for every map (ml.explain.field)
    metrics: dict[str, Any]
    probs: list[float]
    predicted: int
    targets: list[int]
    target_source: str
    provenance: dict[str, Any]
    compute_ms: float  # this map's share of the batch's time in the saliency engine


def saliency_methods() -> tuple[str, ...]:
    """The saliency methods a study arm may use (``ml.explain.METHODS``)."""
    from ml.explain.choices import METHODS

    return tuple(METHODS)


def colormaps() -> tuple[str, ...]:
    """The colormaps a heatmap may be rendered with (``ml.explain.COLORMAPS``)."""
    from ml.explain.choices import COLORMAPS

    return tuple(COLORMAPS)


def postprocess_modes() -> tuple[str, ...]:
    """The post-processing modes a study may choose (``ml.explain.POSTPROCESS_MODES``)."""
    from ml.explain.choices import POSTPROCESS_MODES

    return tuple(POSTPROCESS_MODES)


# ---------------------------------------------------------------------- checkpoints and images


class CheckpointRejected(ValueError):
    """ml refused a checkpoint file; the message is ml's, verbatim (an admin can act on it)."""


class ImageRejected(ValueError):
    """ml could not decode an image (corrupt, unsupported, too large); message verbatim."""


class ImageTooLarge(ImageRejected):
    """The image header declares more pixels than allowed (refused before decoding)."""


def load_checkpoint(source: bytes | Path, **options: Any) -> LoadedCheckpoint:
    """Verify and load a checkpoint (``ml.checkpoint.load_checkpoint``) without running code.

    ``options`` are passed through (``map_location``, architecture hints). Every refusal is
    a :class:`CheckpointRejected`.
    """
    from ml.checkpoint import CheckpointError
    from ml.checkpoint import load_checkpoint as ml_load_checkpoint

    try:
        return ml_load_checkpoint(source, **options)
    except CheckpointError as exc:
        raise CheckpointRejected(str(exc)) from exc


def load_image(source: bytes | Path, **options: Any) -> Any:
    """Decode an image file (``ml.data.load_image``): DICOM, PNG, JPEG → ``LoadedImage``.

    ``options`` are passed through (``filename``, ``frame``, ``max_pixels``). A file that
    cannot be decoded is an :class:`ImageRejected` (:class:`ImageTooLarge` when its declared
    size is over ``max_pixels``).
    """
    from ml.data import ImageLoadError, ImageTooLargeError
    from ml.data import load_image as ml_load_image

    try:
        return ml_load_image(source, **options)
    except ImageTooLargeError as exc:
        raise ImageTooLarge(str(exc)) from exc
    except ImageLoadError as exc:
        raise ImageRejected(str(exc)) from exc


def float16_npy(array: np.ndarray) -> bytes:
    """``array`` as float16 ``.npy`` bytes: the one writer of stored inputs and raw maps."""
    from ml.explain.render import float16_npy as ml_float16_npy

    return ml_float16_npy(array)


def source_npy(values: np.ndarray) -> bytes:
    """A display source (pixels at real depth, ``ml.data.source``) as ``.npy`` bytes."""
    import io

    import numpy as _np

    buf = io.BytesIO()
    _np.save(buf, _np.ascontiguousarray(values), allow_pickle=False)
    return buf.getvalue()


# ---------------------------------------------------------------------- map fields


def field_png(field_npy: bytes, *, size: tuple[int, int] | None, colormap: str) -> bytes:
    """A stored map field rendered as an RGBA heatmap PNG (reports, previews, exports).

    The colormap table is the one the rater's browser colours the same field with, so a PNG
    rendered here at ``size=None`` equals the browser's drawing of the field pixel for pixel.
    """
    from ml.explain.field import load_field, render_field_png

    return render_field_png(load_field(field_npy), size=size, colormap=colormap)


def colormap_table(colormap: str) -> list[list[int]]:
    """The 256 RGB entries of ``colormap`` (``ml.explain.field.colormap_table``)."""
    from ml.explain.field import colormap_table as ml_colormap_table

    return ml_colormap_table(colormap)


# ---------------------------------------------------------------------- the saliency pipeline


def randomised_copy(model: nn.Module, *, seed: int) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised (``ml.explain.sanity``), seeded.

    The architecture, input normalisation and BN routes stay; only the learned weights are
    gone. Its maps are the model-randomisation sanity check that catch trials show raters.
    """
    from ml.explain.sanity import randomize_model

    return randomize_model(model, seed=seed).eval()


def explain_images(
    model: nn.Module,
    *,
    arrays: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None],
    display_sizes: Sequence[tuple[int, int]],
    image_size: int,
    in_channels: int,
    class_names: Sequence[str],
    checkpoint_sha256: str,
    method: str,
    params: Mapping[str, Any],
    target: str,
    postprocess: str,
    postprocess_params: Mapping[str, Any],
    colormap: str,
    route: str | None = None,
    labels: Sequence[Sequence[float]] | None = None,
    device: str = "auto",
    max_batch: int | None = None,
    multilabel: bool = False,
) -> list[MapResult]:
    """Maps of one model for a batch of stored images, through ml's one saliency pipeline.

    ``arrays`` are the stored model inputs (float in [0, 1]), ``masks`` 0/1 ground-truth masks
    at the same resolution (None where an image has none), ``display_sizes`` the (height,
    width) each heatmap is rendered at, ``labels`` one row over ``class_names`` per image (for
    the ``ground_truth`` target). This is exactly what ``radsal saliency`` runs, so a study's
    maps are byte-identical to the CLI's for the same checkpoint, images and settings.
    """
    import torch as _torch

    from ml.device import resolve_device
    from ml.explain.pipeline import MapSettings, explain_batch, prepare_batch

    batch = prepare_batch(arrays, image_size, in_channels, masks=masks)
    dev = resolve_device(device)
    out = explain_batch(
        model,
        batch,
        MapSettings(
            method=method,
            params=dict(params),
            target=target,
            postprocess=postprocess,
            postprocess_params=dict(postprocess_params),
            colormap=colormap,
        ),
        class_names=class_names,
        checkpoint_sha256=checkpoint_sha256,
        display_sizes=display_sizes,
        route=route,
        labels=_torch.tensor(labels, dtype=_torch.float32) if labels is not None else None,
        device=dev,
        max_batch=max_batch,
        multilabel=multilabel,
    )
    return [
        MapResult(
            raw_npy=m.raw_npy,
            field_npy=m.field_npy,
            metrics=m.metrics,
            probs=m.probs,
            predicted=m.predicted,
            targets=m.targets,
            target_source=m.target_source,
            provenance=m.provenance,
            compute_ms=out.compute_ms / len(out.maps),
        )
        for m in out.maps
    ]


# ---------------------------------------------------------------------- map statistics


def map_is_degenerate(raw: np.ndarray) -> bool:
    """A map with nothing to point at: constant, all-zero or not finite (``ml.evaluation``).

    Degenerate maps are counted and excluded from the statistics, never averaged in.
    """
    from ml.evaluation.map_nulls import is_degenerate

    return is_degenerate(raw)


def shuffled_mask_scores(
    raw_maps: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    *,
    image_size: int,
    postprocess: str,
    postprocess_params: Mapping[str, Any],
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Each stored raw map scored against *another* case's mask: the chance level that counts.

    ``raw_maps`` are the arm's raw maps at model resolution, ``masks`` the 0/1 masks of the
    same cases at stored resolution (letterboxed here exactly as the pipeline does). The
    pairing is ``ml.evaluation.map_nulls.derangement`` and the post-processing and metrics
    are the pipeline's, as in ``radsal saliency``'s shuffled-mask baseline. One dict per case
    (``mask_from``: the index of the case whose mask it was scored against); an empty list for
    fewer than two cases or a mask that is empty after letterboxing.
    """
    import numpy as _np
    import torch as _torch

    from ml.evaluation.map_nulls import derangement, is_degenerate
    from ml.explain.metrics import mask_energy, pointing_game
    from ml.explain.pipeline import prepare_batch
    from ml.explain.postprocess import postprocess as ml_postprocess

    if len(raw_maps) < 2 or len(raw_maps) != len(masks):
        return []
    blank = [_np.zeros_like(m, dtype=_np.float32) for m in masks]
    letterboxed = prepare_batch(blank, image_size, 1, masks=list(masks)).masks
    if letterboxed is None or not bool(letterboxed.flatten(1).any(dim=1).all()):
        return []
    raw = _torch.stack([_torch.from_numpy(_np.asarray(r, dtype=_np.float32)) for r in raw_maps])
    perm = _torch.from_numpy(derangement(len(raw_maps), seed))
    other = letterboxed[perm]
    maps01 = ml_postprocess(raw, postprocess, **dict(postprocess_params))
    energy = mask_energy(maps01, other)
    point = pointing_game(raw, other)
    return [
        {
            "mask_from": int(perm[i]),
            "mask_energy": float(energy[i]),
            "pointing": float(point[i]),
            "degenerate": is_degenerate(raw[i].numpy()),
        }
        for i in range(len(raw_maps))
    ]


def compare_map_arms(
    rows: Sequence[Mapping[str, Any]],
    *,
    arms: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    kinds: Mapping[str, str],
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-arm means with case-bootstrap CIs, paired differences with CIs and Wilcoxon p, and
    degenerate-map counts (``ml.evaluation.map_stats.compare_arms``, as ``radsal saliency``)."""
    from ml.evaluation.map_stats import compare_arms

    return compare_arms(
        rows, arms=arms, pairs=pairs, kinds=kinds, n_bootstrap=n_bootstrap, seed=seed
    )
