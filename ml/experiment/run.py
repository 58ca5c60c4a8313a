"""``run_experiment``: standard vs dual-BN on one data set, from training to an HTML report.

Stages, each recorded in ``OUT/experiment.json`` when done so an interrupted run resumes where
it stopped (a training interrupted mid-way continues from its ``last.pt``):

1. ``train-standard`` and 2. ``train-dual``: the same data, split and seed, so the arms differ
   only in the training objective (``OUT/models/<label>/``);
3. ``evaluate-*``: AUROC with CIs and robustness on the held-out split the checkpoints name,
   and the dual-BN branch divergence (``OUT/eval/<label>/report.json``);
4. ``maps``: saliency maps of the standard model and of both BN routes of the dual-BN model on
   the held-out split, with the null baselines and the paired statistics (``OUT/maps/``);
5. ``report``: ``OUT/report.html``, self-contained (images inlined).

Training settings come from :class:`ml.training.TrainConfig` (the single source of training
defaults); ``train`` holds only what the caller changes. The one experiment-specific default
is ``test_fraction`` 0.2 for a CSV without a split column: maps and final numbers belong on
images neither model was trained or selected on.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ml.checkpoint import load_checkpoint
from ml.device import resolve_device
from ml.evaluation import evaluate_checkpoint
from ml.evaluation.map_compare import compare_with_statistics
from ml.experiment.html import write_report
from ml.explain.cases import heldout_cases
from ml.explain.compare import Arm, CompareConfig
from ml.training import TrainConfig, train

__all__ = ["ARMS", "ExperimentConfig", "run_experiment"]

# (label, training mode) of the two models; the dual-BN model is explained through both routes.
ARMS = (("standard", "standard"), ("dual-bn", "dual"))
STATE = "experiment.json"


@dataclass
class ExperimentConfig:
    """What one experiment run needs; ``train`` overrides TrainConfig fields for both models."""

    data: str
    out: str
    train: dict[str, Any] = field(default_factory=dict)
    eval_eps: list[float] | None = None  # None: 0, ε/2, ε, 2ε around the dual model's ε
    eval_steps: int = 10
    n_bootstrap: int = 1000
    method: str = "gradient"
    target: str = "predicted"
    limit: int | None = None  # cases for the maps (None: the whole held-out split)
    faithfulness_steps: int = 16
    sanity_cases: int = 8
    nulls: bool = True
    progress: bool = True

    def train_config(self, label: str, mode: str) -> TrainConfig:
        opts: dict[str, Any] = {"test_fraction": 0.2, **self.train}
        return TrainConfig(
            data=self.data,
            out=str(Path(self.out) / "models" / label),
            mode=mode,
            label=label,
            **opts,
        )


def _say(cfg: ExperimentConfig, text: str) -> None:
    if cfg.progress:
        print(f"[experiment] {text}", file=sys.stderr, flush=True)


def _load_state(out: Path, cfg: ExperimentConfig) -> dict[str, Any]:
    path = out / STATE
    # Where and how fast it runs may change between attempts; what it computes may not.
    runtime = ("threads", "device")
    train = {k: v for k, v in cfg.train.items() if k not in runtime}
    settings = json.loads(json.dumps(asdict(cfg) | {"progress": None, "train": train}, default=str))
    if path.is_file():
        state = json.loads(path.read_text())
        if state.get("settings") != settings:
            raise ValueError(
                f"{out} holds an experiment with other settings; resume it with the same "
                "options or choose another --out"
            )
        return dict(state)
    return {"settings": settings, "done": {}}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    tmp = out / f".{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=2, default=str) + "\n")
    tmp.replace(out / STATE)


def run_experiment(cfg: ExperimentConfig) -> dict[str, Any]:
    """Run (or resume) every stage; return the state with each stage's result summary."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state = _load_state(out, cfg)
    done: dict[str, Any] = state["done"]
    stages: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    for label, mode in ARMS:
        stages.append((f"train-{label}", partial(_train, cfg, label, mode)))
    for label, _ in ARMS:
        stages.append((f"evaluate-{label}", partial(_evaluate, cfg, label)))
    stages.append(("maps", partial(_maps, cfg)))
    stages.append(("report", partial(_report, cfg)))
    for i, (name, run) in enumerate(stages, start=1):
        if name in done:
            _say(cfg, f"{i}/{len(stages)} {name}: done earlier, skipped")
            continue
        _say(cfg, f"{i}/{len(stages)} {name} ...")
        start = time.perf_counter()
        result = run()
        result["seconds"] = round(time.perf_counter() - start, 1)
        done[name] = result
        _save_state(out, state)
        _say(cfg, f"{i}/{len(stages)} {name}: finished in {result['seconds']} s")
    return state


def _train(cfg: ExperimentConfig, label: str, mode: str) -> dict[str, Any]:
    tc = cfg.train_config(label, mode)
    tc.resume = (Path(tc.out) / "last.pt").is_file()
    result = train(tc, progress=cfg.progress)
    return {
        "best": str(result.best_path),
        "selected_epoch": result.selection.get("epoch"),
        "warnings": result.selection.get("warnings", []),
    }


def _report(cfg: ExperimentConfig) -> dict[str, Any]:
    return {"path": str(write_report(Path(cfg.out), cfg.data))}


def _best(cfg: ExperimentConfig, label: str) -> Path:
    return Path(cfg.out) / "models" / label / "best.pt"


def _evaluate(cfg: ExperimentConfig, label: str) -> dict[str, Any]:
    eps = cfg.eval_eps
    if eps is None:
        dual_eps = float(cfg.train_config("dual-bn", "dual").eps)
        eps = [dual_eps / 2, dual_eps, 2 * dual_eps]
    tc = cfg.train_config(label, "standard")
    report = evaluate_checkpoint(
        _best(cfg, label),
        cfg.data,
        eps=eps,
        steps=cfg.eval_steps,
        out_dir=Path(cfg.out) / "eval" / label,
        n_bootstrap=cfg.n_bootstrap,
        progress=cfg.progress,
        device=tc.device,
        seed=tc.seed,
    )
    return {"split": report["split"], "macro_auroc": report["macro_auroc"]}


def _maps(cfg: ExperimentConfig) -> dict[str, Any]:
    tc = cfg.train_config("standard", "standard")
    device = resolve_device(tc.device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    std = load_checkpoint(_best(cfg, "standard"), map_location=device)
    dual = load_checkpoint(_best(cfg, "dual-bn"), map_location=device)
    arms = [
        Arm("standard", std.model, std.meta, std.sha256, None),
        Arm("dual-bn-clean", dual.model, dual.meta, dual.sha256, "clean"),
        Arm("dual-bn-adv", dual.model, dual.meta, dual.sha256, "adv"),
    ]
    split, cases = heldout_cases(cfg.data, std.meta, limit=cfg.limit)
    config = CompareConfig(
        method=cfg.method,
        target=cfg.target,
        batch_size=tc.batch_size,
        device=device,
        faithfulness_steps=cfg.faithfulness_steps,
        sanity_cases=cfg.sanity_cases,
        progress=cfg.progress,
    )
    report = compare_with_statistics(
        arms,
        cases,
        Path(cfg.out) / "maps",
        config,
        nulls=cfg.nulls,
        n_bootstrap=cfg.n_bootstrap,
        seed=tc.seed,
    )
    return {"split": split, "cases": len(cases.cases), "notes": report["statistics"]["notes"]}
