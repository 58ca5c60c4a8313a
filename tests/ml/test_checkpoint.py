"""radsal/1 checkpoints: round trip, safe loading, seed-layout import."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
import torch

from ml.checkpoint import CheckpointError, import_checkpoint, load_checkpoint, save_checkpoint
from ml.models import bn_route, create_model

NORMALIZE = {"mean": [0.5], "std": [0.25]}
META: dict[str, object] = {
    "arch": "resnet_tiny",
    "num_classes": 3,
    "class_names": ["normal", "nodule", "opacity"],
    "in_channels": 1,
    "image_size": 32,
    "normalize": NORMALIZE,
    "train": {"mode": "dual", "norm": "linf", "eps": 0.01, "steps": 3},
}


def _save(path: Path, model: torch.nn.Module, dual: bool, **over: object) -> str:
    meta = {**META, **over}
    return save_checkpoint(path, model, dual_bn=dual, **meta)  # type: ignore[arg-type]


def _perturb_bn(model: torch.nn.Module) -> None:
    """Give every BN distinct statistics so route mix-ups show in the outputs."""
    g = torch.Generator().manual_seed(3)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
        if name.endswith("running_var"):
            buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)


def test_round_trip_reproduces_outputs_and_metadata(tmp_path: Path) -> None:
    model = create_model("resnet_tiny", 3, 1, dual_bn=True, normalize=NORMALIZE).eval()
    _perturb_bn(model)
    digest = _save(tmp_path / "m.pt", model, True)
    import hashlib

    assert digest == hashlib.sha256((tmp_path / "m.pt").read_bytes()).hexdigest()
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.source_format == "radsal/1" and loaded.sha256 == digest
    assert loaded.meta["class_names"] == META["class_names"] and loaded.meta["dual_bn"] is True
    assert "state_dict" not in loaded.meta and not loaded.model.training
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        for route in ("clean", "adv"):
            with bn_route(model, route), bn_route(loaded.model, route):
                assert torch.equal(model(x), loaded.model(x))
    # Bytes and file objects load the same.
    data = (tmp_path / "m.pt").read_bytes()
    assert load_checkpoint(data).sha256 == digest
    assert load_checkpoint(io.BytesIO(data)).sha256 == digest
    # The file is a plain weights-only dict as promised in DESIGN.md.
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["format"] == "radsal/1" and isinstance(raw["state_dict"], dict)


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    model = create_model("resnet_tiny", 3, 1)
    _save(tmp_path / "a" / "best.pt", model, False, normalize=None)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["best.pt"]


def test_malicious_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Evil()}, evil)
    with pytest.raises(CheckpointError, match="needs code to load"):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"this is not a checkpoint", "corrupt"),
    ],
)
def test_garbage_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(data)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    _save(tmp_path / "m.pt", create_model("resnet_tiny", 3, 1), False, normalize=None)
    data = (tmp_path / "m.pt").read_bytes()
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(data[: len(data) // 2])
    assert zipfile.is_zipfile(io.BytesIO(data))


def test_wrong_shapes_and_class_names_are_named(tmp_path: Path) -> None:
    model = create_model("resnet_tiny", 3, 1)
    raw = {**META, "format": "radsal/1", "dual_bn": False, "normalize": None}
    sd = model.state_dict()
    sd["backbone.fc.weight"] = torch.zeros(5, 64)
    torch.save({**raw, "state_dict": sd}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"shape mismatch: backbone\.fc\.weight"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({**raw, "class_names": ["a"], "state_dict": model.state_dict()}, tmp_path / "n.pt")
    with pytest.raises(CheckpointError, match="1 class names for 3 classes"):
        load_checkpoint(tmp_path / "n.pt")
    torch.save({**raw, "arch": "alexnet9", "state_dict": model.state_dict()}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_checkpoint(tmp_path / "a.pt")
    missing = dict(model.state_dict())
    del missing["backbone.conv1.weight"]
    torch.save({**raw, "state_dict": missing}, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"missing: backbone\.conv1\.weight"):
        load_checkpoint(tmp_path / "m.pt")


def _seed_state_dict(model: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """What the seed code saves: torchvision keys (``bns.0/1`` for dual BN), maybe ``module.``."""
    return {
        prefix + k.removeprefix("backbone."): v.clone()
        for k, v in model.state_dict().items()
        if k.startswith("backbone.")
    }


@pytest.mark.parametrize(
    ("arch", "prefix"),
    [
        ("resnet_tiny", ""),
        ("resnet_tiny", "module."),
        pytest.param("resnet18", "module.", marks=pytest.mark.slow),
    ],
)
def test_seed_dual_bn_import_reproduces_outputs_exactly(
    tmp_path: Path, arch: str, prefix: str
) -> None:
    seed = create_model(arch, 8, 3, dual_bn=True).eval()
    _perturb_bn(seed)
    torch.save(_seed_state_dict(seed, prefix), tmp_path / "seed.pth")
    loaded = load_checkpoint(tmp_path / "seed.pth", image_size=64)
    assert loaded.source_format == "seed-dual-bn"
    assert loaded.meta["arch"] == arch and loaded.meta["dual_bn"] is True
    assert loaded.meta["num_classes"] == 8 and loaded.meta["in_channels"] == 3
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for route in ("clean", "adv"):
            with bn_route(seed, route), bn_route(loaded.model, route):
                assert torch.equal(seed(x), loaded.model(x))
    names = [f"f{i}" for i in range(8)]
    digest, _ = import_checkpoint(
        tmp_path / "seed.pth", tmp_path / "out.pt", class_names=names, image_size=64
    )
    again = load_checkpoint(tmp_path / "out.pt")
    assert again.source_format == "radsal/1" and again.sha256 == digest
    assert again.meta["class_names"] == names and again.meta["train"]["mode"] == "imported"
    with torch.no_grad(), bn_route(seed, "adv"), bn_route(again.model, "adv"):
        assert torch.equal(seed(x), again.model(x))


def test_arch_is_inferred_from_block_structure() -> None:
    from torchvision import models as tvm

    from ml.checkpoint.layouts import infer_arch

    for name in ("resnet18", "resnet34", "resnet50"):
        assert infer_arch(getattr(tvm, name)(weights=None).state_dict()) == name
    assert infer_arch({"conv1.weight": torch.zeros(8, 1, 3, 3)}) is None


def test_torchvision_layout_import(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    tv = resnet18(weights=None, num_classes=2).eval()
    torch.save(
        {"state_dict": {"module." + k: v for k, v in tv.state_dict().items()}}, tmp_path / "tv.pt"
    )
    loaded = load_checkpoint(tmp_path / "tv.pt", image_size=64)
    assert loaded.source_format == "torchvision" and loaded.meta["arch"] == "resnet18"
    assert loaded.meta["dual_bn"] is False
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(tv(x), loaded.model(x))
    with pytest.raises(CheckpointError, match="num_classes=5 given"):
        load_checkpoint(tmp_path / "tv.pt", num_classes=5)
