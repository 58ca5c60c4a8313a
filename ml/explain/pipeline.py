"""The saliency pipeline: one code path from model inputs to stored map files.

``radsal saliency`` (:mod:`ml.explain.compare`) and the app's generation jobs (through
``app.services.inference``) both call :func:`explain_batch`, so the same model, inputs and
settings give byte-identical raw maps and heatmaps wherever they are computed. The steps, in
order, for a batch of images:

1. **compute** — :func:`~ml.explain.engine.compute_saliency` (method, target policy, BN route);
2. **post-process** — :func:`~ml.explain.postprocess.postprocess`, each map on its own;
3. **field** — the post-processed map is resampled from the letterbox onto a fixed-size
   quantised scalar field over the image's own extent (:mod:`ml.explain.field`: uint8
   ``.npy``, the same size, header and byte length for every map of a study), which the
   rater's browser colours itself and from which reports render PNGs with the same colormap
   table; the raw (un-post-processed) map is kept as float16 ``.npy`` at model-input
   resolution. No PNG is encoded here;
4. **metrics** — :func:`~ml.explain.metrics.map_metrics` on the post-processed maps, with the
   ground-truth masks letterboxed exactly like the input; the pointing game uses the raw maps
   (clipping creates ties at the maximum that would make it meaningless);
5. **provenance** — what each map was computed from, including post-processing and colormap.

Model inputs are used at the precision radsal stores them (float16, see
:func:`stored_input`), so an image explained from a data set folder and the same image
uploaded to a study are the same input.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ml.data import Letterbox, prepare_input
from ml.explain.engine import compute_saliency
from ml.explain.field import FIELD_SIZE, field_npy, field_to_map, map_fields
from ml.explain.metrics import map_metrics
from ml.explain.postprocess import postprocess
from ml.explain.provenance import jsonable, provenance
from ml.explain.render import float16_npy, raw_map_bytes

__all__ = [
    "ExplainedBatch",
    "ExplainedMap",
    "MapSettings",
    "ModelBatch",
    "explain_batch",
    "prepare_batch",
    "stored_input",
]


@dataclass(frozen=True)
class MapSettings:
    """Everything about a map that a study fixes for all arms (the model and route aside)."""

    method: str = "gradient"
    params: Mapping[str, Any] = field(default_factory=dict)
    target: str = "predicted"
    postprocess: str = "clip_std"
    postprocess_params: Mapping[str, Any] = field(default_factory=dict)
    colormap: str = "jet"
    field_size: int = FIELD_SIZE  # cells per side of every map's stored field

    def postprocess_record(self) -> dict[str, Any]:
        """The post-processing and colormap as stored in every map's provenance."""
        return {"mode": self.postprocess, **self.postprocess_params, "colormap": self.colormap}


@dataclass
class ModelBatch:
    """Images prepared for one model's input spec."""

    inputs: torch.Tensor  # N×C×S×S in [0, 1]
    boxes: list[Letterbox]
    masks: torch.Tensor | None  # N×S×S bool, all-False for an image without a mask


@dataclass(frozen=True)
class ExplainedMap:
    """One image's map, ready to store: the files' bytes plus what the database keeps."""

    raw_npy: bytes  # float16 .npy, model-input resolution, not post-processed
    field_npy: bytes  # uint8 .npy field (fixed size for the study): what raters are served
    field: np.ndarray  # the same field as an array (F×F uint8, level = round(255 · value))
    metrics: dict[str, Any]
    probs: list[float]
    predicted: int  # index of the top class
    targets: list[int]  # class indices whose logits were explained
    target_name: str
    target_source: str
    provenance: dict[str, Any]

    def map01(self, size: tuple[int, int]) -> np.ndarray:
        """The post-processed map (from its field) at (height, width), float32 in [0, 1]."""
        return field_to_map(self.field, size)


@dataclass
class ExplainedBatch:
    """Per-image results plus the batch-level tensors a caller may measure further."""

    maps: list[ExplainedMap]
    raw: torch.Tensor  # N×S×S raw maps (e.g. for deletion/insertion curves)
    maps01: torch.Tensor  # N×S×S post-processed maps
    probs: torch.Tensor  # N×K class probabilities
    targets: list[list[int]]
    params: dict[str, Any]  # the method's parameters with defaults filled in
    compute_ms: float  # time inside the saliency engine for the whole batch


def stored_input(array: np.ndarray) -> np.ndarray:
    """``array`` at the precision radsal stores model inputs (float16), as float32.

    The app keeps each uploaded image's model input as float16 ``.npy``; running every input
    through the same rounding makes a data-set image and the same image in a study identical.
    """
    return np.load(io.BytesIO(float16_npy(array)), allow_pickle=False).astype(np.float32)


def prepare_batch(
    arrays: Sequence[np.ndarray],
    image_size: int,
    in_channels: int,
    masks: Sequence[np.ndarray | None] | None = None,
) -> ModelBatch:
    """Letterbox images (and their 0/1 masks, identically) into a model's input square."""
    xs, boxes = [], []
    for arr in arrays:
        x, box = prepare_input(stored_input(arr), image_size, in_channels)
        xs.append(x)
        boxes.append(box)
    stacked: torch.Tensor | None = None
    if masks is not None and any(m is not None for m in masks):
        rows = []
        for m in masks:
            if m is None:
                rows.append(torch.zeros(image_size, image_size, dtype=torch.bool))
            else:
                t, _ = prepare_input(np.asarray(m, dtype=np.float32), image_size, 1)
                rows.append(t[0] > 0.5)
        stacked = torch.stack(rows)
    return ModelBatch(torch.stack(xs), boxes, stacked)


def explain_batch(
    model: torch.nn.Module,
    batch: ModelBatch,
    settings: MapSettings,
    *,
    class_names: Sequence[str],
    checkpoint_sha256: str,
    display_sizes: Sequence[tuple[int, int]],
    route: str | None = None,
    labels: torch.Tensor | None = None,
    device: torch.device | None = None,
    max_batch: int | None = None,
    multilabel: bool = False,
) -> ExplainedBatch:
    """Compute → post-process → field → metrics → provenance for one batch of one model.

    ``display_sizes`` are the (height, width) of each image's display rendition (checked
    against the batch; the field covers each image's full extent whatever its size).
    ``labels`` (N×K over ``class_names``) are needed for the ``ground_truth`` target only.
    """
    n = int(batch.inputs.shape[0])
    if len(display_sizes) != n:
        raise ValueError(f"got {len(display_sizes)} display sizes for {n} images")
    names = list(class_names)
    res = compute_saliency(
        model,
        batch.inputs,
        method=settings.method,
        target=settings.target,
        labels=labels,
        class_names=names,
        route=route,
        params=settings.params,
        device=device,
        max_batch=max_batch,
        multilabel=multilabel,
    )
    maps01 = postprocess(res.maps, settings.postprocess, **settings.postprocess_params)
    fields = map_fields(maps01, batch.boxes, settings.field_size)
    metrics = map_metrics(maps01, batch.masks, raw_maps=res.maps)
    per_map_ms = res.compute_ms / n
    record = provenance(
        checkpoint_sha256=checkpoint_sha256,
        route=route,
        method=settings.method,
        params=res.params,
        target=settings.target,
        compute_ms=per_map_ms,
        device=device,
        postprocess=settings.postprocess_record(),
    )
    sources = res.target_sources or [settings.target] * n
    out = []
    for i in range(n):
        probs = [float(p) for p in res.probs[i].tolist()]
        out.append(
            ExplainedMap(
                raw_npy=raw_map_bytes(res.maps[i]),
                field_npy=field_npy(fields[i]),
                field=fields[i],
                metrics=metrics[i],
                probs=probs,
                predicted=int(np.argmax(probs)),
                targets=[int(k) for k in res.targets[i]],
                target_name=res.target_names[i],
                target_source=sources[i],
                provenance=copy.deepcopy(record),
            )
        )
    return ExplainedBatch(
        maps=out,
        raw=res.maps,
        maps01=maps01,
        probs=res.probs,
        targets=res.targets,
        params=jsonable(res.params),
        compute_ms=res.compute_ms,
    )
