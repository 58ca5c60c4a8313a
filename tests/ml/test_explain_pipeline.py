"""The one saliency pipeline (``ml.explain.pipeline``) on a tiny model: what each map carries."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from ml.explain import (
    MapSettings,
    explain_batch,
    float16_npy,
    load_raw_map,
    prepare_batch,
    raw_map_bytes,
    save_raw_map,
    stored_input,
)
from ml.models import create_model

NAMES = ["normal", "pneumonia"]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("resnet_tiny", 2, 1).eval()


def _images() -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    rng = np.random.default_rng(0)
    arrays = [rng.random((40, 48)).astype(np.float32), rng.random((30, 30)).astype(np.float32)]
    mask = np.zeros((40, 48), dtype=np.float32)
    mask[10:20, 12:24] = 1.0
    return arrays, [mask, None]


def test_each_map_has_its_files_metrics_and_provenance(model: torch.nn.Module) -> None:
    arrays, masks = _images()
    batch = prepare_batch(arrays, 32, 1, masks=masks)
    assert batch.inputs.shape == (2, 1, 32, 32) and batch.masks is not None
    settings = MapSettings(target="class:pneumonia", postprocess_params={"k": 2.0}, colormap="hot")
    out = explain_batch(
        model,
        batch,
        settings,
        class_names=NAMES,
        checkpoint_sha256="0" * 64,
        display_sizes=[(80, 96), (30, 30)],  # a display rendition may be larger than the input
        device=torch.device("cpu"),
    )
    assert len(out.maps) == 2 and out.compute_ms > 0 and out.raw.shape == (2, 32, 32)
    for m, size in zip(out.maps, [(80, 96), (30, 30)], strict=True):
        raw = np.load(io.BytesIO(m.raw_npy), allow_pickle=False)
        assert raw.dtype == np.float16 and raw.shape == (32, 32)
        field = np.load(io.BytesIO(m.field_npy), allow_pickle=False)
        assert field.dtype == np.uint8 and field.shape == (256, 256)
        assert np.array_equal(field, m.field)
        assert m.map01(size).shape == size
        assert m.map01(size).min() >= 0.0 and m.map01(size).max() <= 1.0
        assert m.target_name == "pneumonia" and m.targets == [1] and m.target_source == "class"
        assert m.predicted == int(np.argmax(m.probs)) and abs(sum(m.probs) - 1.0) < 1e-5
        assert m.provenance["postprocess"] == {"mode": "clip_std", "k": 2.0, "colormap": "hot"}
        assert m.provenance["target"] == "class:pneumonia" and m.provenance["device"] == "cpu"
    # Every map's field file has one length and one header, whatever the image's size.
    assert len(out.maps[0].field_npy) == len(out.maps[1].field_npy)
    assert out.maps[0].field_npy[:128] == out.maps[1].field_npy[:128]
    assert out.maps[0].metrics["mask_energy"] is not None
    assert out.maps[0].metrics["pointing"] in (0.0, 1.0)
    assert out.maps[1].metrics["mask_energy"] is None  # no mask for the second image
    with pytest.raises(ValueError, match="display sizes"):
        explain_batch(
            model, batch, settings, class_names=NAMES, checkpoint_sha256="0", display_sizes=[]
        )


def test_a_map_depends_on_its_batch_neighbours_only_by_rounding(model: torch.nn.Module) -> None:
    """Same batch → same bytes; another batch size may change the kernels' summation order,
    so the last float bits (never the picture) can differ."""
    arrays, _ = _images()
    kw = {"class_names": NAMES, "checkpoint_sha256": "0" * 64, "device": torch.device("cpu")}
    sizes = [(40, 48), (30, 30)]
    first = explain_batch(
        model, prepare_batch(arrays, 32, 1), MapSettings(), display_sizes=sizes, **kw
    )
    again = explain_batch(
        model, prepare_batch(arrays, 32, 1), MapSettings(), display_sizes=sizes, **kw
    )
    assert [m.raw_npy for m in first.maps] == [m.raw_npy for m in again.maps]
    assert [m.field_npy for m in first.maps] == [m.field_npy for m in again.maps]
    alone = explain_batch(
        model, prepare_batch(arrays[1:], 32, 1), MapSettings(), display_sizes=sizes[1:], **kw
    )
    a = np.load(io.BytesIO(first.maps[1].raw_npy)).astype(np.float32)
    b = np.load(io.BytesIO(alone.maps[0].raw_npy)).astype(np.float32)
    assert np.allclose(a, b, rtol=2e-3, atol=1e-6)
    pa = first.maps[1].field.astype(int)
    pb = alone.maps[0].field.astype(int)
    assert np.abs(pa - pb).max() <= 1


def test_one_float16_writer(tmp_path: object) -> None:
    rng = np.random.default_rng(1)
    arr = rng.random((5, 7)).astype(np.float32)
    data = raw_map_bytes(arr)
    assert data == float16_npy(arr) == float16_npy(torch.from_numpy(arr))
    path = save_raw_map(tmp_path / "m.npy", arr)  # type: ignore[operator]
    assert path.read_bytes() == data
    assert np.array_equal(load_raw_map(path), arr.astype(np.float16).astype(np.float32))
    # Inputs are used at stored precision; rounding twice changes nothing.
    once = stored_input(arr)
    assert once.dtype == np.float32 and np.array_equal(stored_input(once), once)
    assert not np.array_equal(once, arr)
    with pytest.raises(ValueError, match="2-D"):
        raw_map_bytes(np.zeros((2, 2, 2)))
