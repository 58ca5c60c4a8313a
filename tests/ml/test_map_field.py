"""The map field (``ml.explain.field``): fixed size and format, geometry, one colormap table."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ml.data import prepare_input
from ml.explain.field import (
    colormap_table,
    field_npy,
    field_to_map,
    load_field,
    map_fields,
    render_field_png,
)
from ml.explain.render import colorize


def test_fields_of_any_image_have_one_length_and_header() -> None:
    rng = np.random.default_rng(0)
    shapes = [(40, 48), (300, 120), (17, 17)]
    boxes = [prepare_input(rng.random(s).astype(np.float32), 32, 1)[1] for s in shapes]
    fields = map_fields(torch.rand(3, 32, 32), boxes, 64)
    assert fields.shape == (3, 64, 64) and fields.dtype == np.uint8
    files = [field_npy(f) for f in fields]
    assert len({len(b) for b in files}) == 1 and len({b[:128] for b in files}) == 1
    assert len(files[0]) == 128 + 64 * 64
    assert np.array_equal(load_field(files[1]), fields[1])
    with pytest.raises(ValueError, match="uint8"):
        field_npy(fields[0].astype(np.float32))


def test_field_covers_the_image_not_the_letterbox_padding() -> None:
    """A tall image: the letterbox pads left and right; the field must not see the padding."""
    image = np.zeros((64, 16), dtype=np.float32)
    _, box = prepare_input(image, 64, 1)
    assert box.pad_left == 24
    square = torch.zeros(1, 64, 64)
    square[0, :, 24:40] = torch.linspace(0, 1, 16)  # a left→right ramp inside the image only
    field = map_fields(square, [box], 16)[0].astype(int)
    assert field[:, 0].max() <= 10 and field[:, -1].min() >= 245  # ends of the ramp, no zeros
    assert (np.diff(field[8]) >= 0).all()


def test_png_from_a_field_is_the_colormap_table_with_alpha_equal_to_the_level() -> None:
    field = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgba = np.asarray(Image.open(io.BytesIO(render_field_png(field, colormap="inferno"))))
    table = np.array(colormap_table("inferno"), dtype=np.uint8)
    assert np.array_equal(rgba[..., :3], table[field]) and np.array_equal(rgba[..., 3], field)
    assert np.array_equal(colorize(field_to_map(field), "inferno"), table[field])
    big = Image.open(io.BytesIO(render_field_png(field, size=(40, 30), colormap="jet")))
    assert big.size == (30, 40) and big.mode == "RGBA"


def test_square_and_letterboxed_images_are_sampled_alike() -> None:
    """A square image takes the fast resize; it must match the general letterbox sampler."""
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    smooth = (xx + yy) / 62.0  # smooth: a sub-cell shift of the samples changes little
    maps = torch.from_numpy(np.stack([smooth, smooth[::-1].copy()]))
    _, square = prepare_input(np.zeros((50, 50), np.float32), 32, 1)
    _, almost = prepare_input(np.zeros((50, 49), np.float32), 32, 1)  # padded by one column
    fast = map_fields(maps, [square, square], 64).astype(int)
    general = map_fields(maps, [almost, almost], 64).astype(int)
    assert fast.shape == general.shape == (2, 64, 64)
    # One column of padding moves the samples by under a cell: the two agree closely, and a
    # square image's field is exactly its map resized (levels within rounding).
    resized = np.rint(
        torch.nn.functional.interpolate(maps[:, None], size=(64, 64), mode="bilinear")[:, 0].numpy()
        * 255
    )
    assert np.abs(fast - resized).max() <= 1
    assert np.abs(fast - general).max() <= 8
