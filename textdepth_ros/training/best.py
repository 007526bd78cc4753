"""The best checkpoint per metric, as PixelFormer keeps them: after each evaluation,
every metric of eval.best_metrics that improved on its best so far (strictly: lower
for errors, higher for d1/d2/d3) gets the current weights in
OUT/best_<metric>.safetensors (PixelFormer: model-<step>-best_<metric>_<value>, the
previous one deleted). The bests so far travel in the resume state, so a resumed run
replaces exactly the files an uninterrupted one would."""
import os
import shutil
from pathlib import Path

from textdepth_ros.metrics import LOWER_IS_BETTER
from textdepth_ros.model.checkpoint import save_checkpoint


def best_path(out_dir, metric: str) -> Path:
    return Path(out_dir) / f"best_{metric}.safetensors"


def improved(metric: str, value: float, best: "dict | None") -> bool:
    if best is None:
        return True
    return value < best["value"] if metric in LOWER_IS_BETTER else value > best["value"]


def update_best(out_dir, bests: dict, metrics: dict, step: int, model, extra: dict, names) -> "list[str]":
    """Write best_<metric>.safetensors for each metric in `names` that improved; `bests`
    (metric -> {"value", "step"}) is updated in place. Returns the improved metrics."""
    better = [m for m in names if improved(m, float(metrics[m]), bests.get(m))]
    if not better:
        return better
    first = save_checkpoint(best_path(out_dir, better[0]), model, extra=dict(extra, step=step, metrics=metrics))
    for metric in better[1:]:
        _same_file(first, best_path(out_dir, metric))  # one write, not one per metric
    for metric in better:
        bests[metric] = {"value": float(metrics[metric]), "step": step}
    return better


def _same_file(source: Path, target: Path) -> None:
    """target := source's content, atomically: a hard link (no second 1.6 GB write), or
    a copy where the file system has no hard links."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
