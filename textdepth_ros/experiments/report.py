"""The text-prior experiment's outputs: the markdown tables, the JSON and the pictures."""
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from textdepth_ros.experiments.text_controls import CONSTANT_TEXT, METRICS
from textdepth_ros.preview import colorize_depth

# Table rows: (variant, control) -> label; in this order.
ROWS = [("baseline", "right", "baseline (no text)"), ("trca", "right", "trca"), ("tbcp", "right", "tbcp"),
        ("full", "right", "full (trca + tbcp)"), ("full", "shuffled", "full, texts shuffled between test images"),
        ("full", "constant", "full, one constant text"), ("tbcp", "shuffled", "tbcp, texts shuffled"),
        ("tbcp", "constant", "tbcp, one constant text"), ("trca", "shuffled", "trca, texts shuffled"),
        ("trca", "constant", "trca, one constant text"), ("baseline", "median-scaled", "baseline, median-scaled (oracle)"),
        ("full", "median-scaled", "full, median-scaled (oracle)"),
        ("baseline", "flat", "reference: flat depth at each image's true median (no model)")]


def aggregate(results: list) -> dict:
    """{world: {(variant, control): {metric: {mean, std, values}}}} over seeds."""
    table = {}
    for r in results:
        for control, metrics in r["metrics"].items():
            cell = table.setdefault(r["world"], {}).setdefault((r["variant"], control), {m: [] for m in METRICS})
            for m in METRICS:
                cell[m].append(metrics[m])
    return {world: {key: {m: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                              "values": v} for m, v in cell.items()} for key, cell in rows.items()}
            for world, rows in table.items()}


def _row(label: str, cell: dict) -> str:
    def fmt(m, digits=3):
        c = cell[m]
        spread = f" ± {c['std']:.{digits}f}" if len(c["values"]) > 1 else ""
        return f"{c['mean']:.{digits}f}{spread}"
    seeds = ", ".join(f"{v:.3f}" for v in cell["abs_rel"]["values"])
    return f"| {label} | {fmt('abs_rel')} | {fmt('rmse')} | {fmt('d1')} | {seeds} |"


def markdown(results: list, settings: dict, machine: dict, seconds: int) -> str:
    table = aggregate(results)
    seeds = settings["seeds"]
    lines = ["# Text-prior experiment (generated rooms)", "",
             f"{len(results)} training runs: {settings['steps']} steps of batch {settings['batch_size']} each, model "
             f"`{settings['model']}`, {settings['height']}x{settings['width']} images, {settings['n_train']} train / "
             f"{settings['n_test']} held-out images (other rooms) per world and seed, seeds 0..{seeds - 1}. Mean ± "
             "sample standard deviation over the seeds; the last column lists AbsRel per seed. Lower AbsRel/RMSE and "
             "higher δ1 are better. Evaluated after the last step (no checkpoint selection), flip TTA, no crop.", ""]
    for world, rows in table.items():
        lines += [f"## World `{world}`", "", "| model / control | AbsRel | RMSE (m) | δ1 | AbsRel per seed |",
                  "|---|---|---|---|---|"]
        lines += [_row(label, rows[(v, c)]) for v, c, label in ROWS if (v, c) in rows]
        variants = dict.fromkeys(r["variant"] for r in results if r["world"] == world)
        lines += ["", f"Constant text: \"{CONSTANT_TEXT[world]}\". Pictures (seed 0; input | ground truth | "
                  "prediction, both on the ground truth's colour scale): "
                  + ", ".join(f"[{v}]({world}_{v}.png)" for v in variants)
                  + (f"; [all side by side]({world}_all.png)" if len(variants) > 1 else ""), ""]
    budget = {}
    for r in results:
        budget.setdefault(r["variant"], []).append(r["train_seconds"])
    lines += ["## Training budget", "", "| variant | steps | training seconds per run (mean, min-max) |", "|---|---|---|"]
    lines += [f"| {v} | {settings['steps']} | {np.mean(s):.0f} ({min(s):.0f}-{max(s):.0f}) |" for v, s in budget.items()]
    load = ", ".join(f"{a:.1f}" for a in machine["load_before"])
    load_after = ", ".join(f"{a:.1f}" for a in machine["load_after"])
    lines += ["", f"Machine: {machine['cpus']} CPUs, {machine['torch_threads']} torch thread(s), {platform.platform()}; "
              f"load average (1, 5, 15 min) {load} before, {load_after} after; {seconds / 60:.0f} min in all, "
              f"{time.strftime('%Y-%m-%d')}.", "",
              f"Re-run: `{settings['command_line']}`", ""]
    return "\n".join(lines)


def picture(test: dict, preds: np.ndarray, count: int) -> np.ndarray:
    """Rows of input | ground truth | prediction for `count` test images spread over the set,
    each row on the ground truth's colour scale (so a wrong scale shows as wrong colours)."""
    n = len(preds)
    picks = np.linspace(0, n - 1, min(count, n)).round().astype(int)
    rows = []
    for i in picks:
        gt = test["depth"][i]
        lo, hi = float(gt[gt > 0].min()), float(gt[gt > 0].max())
        rgb = (test["image"][i].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        rows.append(np.hstack([rgb, colorize_depth(gt, lo, hi), colorize_depth(preds[i], lo, hi)]))
    return np.vstack(rows)


def side_by_side(pictures: dict, world: str, width: int) -> np.ndarray:
    """input | ground truth | every variant's prediction (in ROWS' order), from the
    per-variant pictures of one world (each input | truth | prediction, `width` px each)."""
    variants = [v for v in dict.fromkeys(r[0] for r in ROWS) if (world, v) in pictures]
    first = pictures[(world, variants[0])]
    return np.hstack([first[:, :2 * width]] + [pictures[(world, v)][:, 2 * width:] for v in variants])


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    path.write_bytes(png.tobytes())


def write(out: Path, results: list, pictures: dict, settings: dict, machine: dict, seconds: int) -> None:
    table = aggregate(results)
    summary = {world: {f"{v}/{c}": cell for (v, c), cell in rows.items()} for world, rows in table.items()}
    (out / "results.json").write_text(json.dumps({"settings": settings, "machine": machine, "seconds": seconds,
                                                  "constant_texts": CONSTANT_TEXT, "summary": summary,
                                                  "runs": results}, indent=1) + "\n")
    (out / "results.md").write_text(markdown(results, settings, machine, seconds))
    for (world, variant), rgb in pictures.items():
        write_png(out / f"{world}_{variant}.png", rgb)
    for world in dict.fromkeys(w for w, _ in pictures):
        if sum(w == world for w, _ in pictures) > 1:
            write_png(out / f"{world}_all.png", side_by_side(pictures, world, settings["width"]))
