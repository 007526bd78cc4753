"""The text-prior experiment: the paper's Table 3 in miniature, on generated rooms.

For each world (make-dataset's `scene`: the scene type hints at the room's size;
`scale`: the picture carries no scale and the description does), each seed and each
variant (baseline = PixelFormer, trca, tbcp, full), one model is trained with the same
data, steps and seed, and evaluated on held-out rooms with eval's metrics: with the
right texts, and for the text variants with two controls (texts shuffled between the
test images; one constant text). Writes into --out, all or nothing:
  results.md     the tables (mean and spread over seeds) and how they were made
  results.json   every run's numbers, the settings, the machine and its load
  <world>_<variant>.png   input | ground truth | prediction for a few test rooms (seed 0)
  logs/          each training run's output

  textdepth experiment text-prior --out out/text-prior            (the docs' table)
  textdepth experiment text-prior --out /tmp/quick --seeds 1 --steps 60 --worlds scale
"""
import contextlib
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import torch
from tqdm import tqdm

from textdepth_ros.atomic_io import StagedFolder, terminate_as_interrupt
from textdepth_ros.data.dataset import ListDataset
from textdepth_ros.data.generate import WORLDS, generate_dataset
from textdepth_ros.data.nyu import read_list
from textdepth_ros.data.scene_text import SceneText
from textdepth_ros.devices import torch_threads
from textdepth_ros.errors import UserError
from textdepth_ros.experiments import report
from textdepth_ros.experiments.text_controls import evaluate_with_controls, flat_at_true_median, load_test_set, score
from textdepth_ros.model.config import VARIANTS
from textdepth_ros.paths import config_dir
from textdepth_ros.train import train
from textdepth_ros.training.config import load_train_config

# What every run shares besides config/train_tiny.yaml (and why it differs from it).
RECIPE = [
    "augment.cutdepth=none",  # PixelFormer's CutDepth pastes metres into the picture: a scale leak
    "eval.every_steps=0", "eval.every_epoch=false",  # evaluated once, after the last step (no selection on test)
    "log.save_every=0", "log.image_every=0", "data.num_workers=0", "train.device=cpu", "train.pretrained=false",
]


def add_arguments(parser) -> None:
    parser.add_argument("name", choices=["text-prior"], help="which experiment (text-prior: the ablation of the text modules)")
    parser.add_argument("--out", default="out/text-prior", help="output folder, replaced when the run completes "
                        "(default out/text-prior)")
    parser.add_argument("--worlds", default="scene,scale", help="comma-separated: scene, scale (default both)")
    parser.add_argument("--variants", default="baseline,trca,tbcp,full", help="comma-separated (default all four)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1; each seed generates its own rooms and "
                        "initialises every variant alike (default 3)")
    parser.add_argument("--steps", type=int, default=960, help="optimizer steps per run (default 960: 20 epochs of 192 images)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per step (default 4)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, poly decay to 0.1x (default 1e-3)")
    parser.add_argument("--model", default="micro", help="model config (default micro: config/model/micro.yaml)")
    parser.add_argument("--n-train", type=int, default=192, help="training images per world and seed (default 192)")
    parser.add_argument("--n-test", type=int, default=48, help="held-out images (other rooms) per world and seed (default 48)")
    parser.add_argument("--height", type=int, default=96, help="image height (default 96)")
    parser.add_argument("--width", type=int, default=128, help="image width (default 128)")
    parser.add_argument("--pictures", type=int, default=5, help="test rooms in each picture (default 5)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per run (default 0: torch's choice; "
                        "1 is much faster on a machine other jobs keep busy)")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at once, each in its own process "
                        "(default 1; the results do not depend on it)")


def _names(text: str, allowed, what: str) -> "list[str]":
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UserError(f"--{what} takes a comma-separated list of {', '.join(allowed)}, got {text!r}")
    return names


def check_arguments(args) -> None:
    args.world_list = _names(args.worlds, WORLDS, "worlds")
    args.variant_list = _names(args.variants, VARIANTS, "variants")
    for name in ("seeds", "steps", "batch_size", "n_train", "pictures", "jobs"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.n_test < 2:
        raise UserError("--n-test must be at least 2 (the shuffled-text control needs two images)")
    if args.n_train < args.batch_size:
        raise UserError(f"--n-train {args.n_train} is smaller than one batch ({args.batch_size})")


def command_line(args) -> str:
    """The command that re-runs this experiment (every option spelled out)."""
    return (f"textdepth experiment text-prior --out {args.out} --worlds {args.worlds} --variants {args.variants} "
            f"--seeds {args.seeds} --steps {args.steps} --batch-size {args.batch_size} --lr {args.lr:g} "
            f"--model {args.model} --n-train {args.n_train} --n-test {args.n_test} --height {args.height} "
            f"--width {args.width}" + (f" --threads {args.threads}" if args.threads else "")
            + (f" --jobs {args.jobs}" if args.jobs > 1 else ""))


def make_data(folder: Path, world: str, seed: int, args) -> dict:
    return generate_dataset(folder, args.n_train, args.n_test, args.height, args.width, seed=seed, world=world)


def train_one(paths: dict, variant: str, seed: int, args, run_dir: Path, log) -> dict:
    """Train one model (its output goes to `log`); returns the summary of train()."""
    steps_per_epoch = args.n_train // args.batch_size
    overrides = RECIPE + [
        f"model={args.model}", f"variant={variant}", f"data.root={paths['root']}",
        f"data.train_list={paths['train_list']}", "data.test_list=", f"log.out_dir={run_dir}",
        f"train.seed={seed}", f"train.batch_size={args.batch_size}", f"train.lr={args.lr}",
        f"train.epochs={-(-args.steps // steps_per_epoch)}", f"train.max_steps={args.steps}"]
    if paths["captions_dir"]:
        overrides.append(f"data.captions_dir={paths['captions_dir']}")
    cfg = load_train_config(config_dir() / "train_tiny.yaml", overrides)
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return train(cfg)


def run_one(job: dict) -> dict:
    """One training run and its evaluation (in this process or a pool's worker)."""
    args, world, seed, variant, paths = job["args"], job["world"], job["seed"], job["variant"], job["paths"]
    if args.threads:
        torch.set_num_threads(args.threads)
    test = load_test_set(ListDataset(paths["root"], read_list(paths["test_list"]),
                                     SceneText(captions_dir=paths["captions_dir"]), list_name="test list"))
    with open(job["log"], "w") as log:
        summary = train_one(paths, variant, seed, args, job["run_dir"], log)
    rows, preds = evaluate_with_controls(summary["model"].eval(), test, world, seed)
    if variant == "baseline":  # a reference that needs no model, one per world and seed
        rows["flat"] = score(flat_at_true_median(test["depth"]), test["depth"])
    shutil.rmtree(job["run_dir"], ignore_errors=True)  # its checkpoints are not results
    return {"world": world, "seed": seed, "variant": variant, "steps": summary["step"],
            "train_seconds": round(summary["seconds"], 1), "images_per_s": round(summary["images_per_s"], 2),
            "metrics": rows, "picture": report.picture(test, preds["right"], args.pictures) if seed == 0 else None}


def _results(jobs: list, workers: int):
    """Yield each job's result as it completes. Leaving early (an error, Ctrl-C, SIGTERM)
    terminates the worker processes (Pool's exit), so no training outlives the command."""
    if workers <= 1:
        yield from map(run_one, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers, maxtasksperchild=1) as pool:
        yield from pool.imap_unordered(run_one, jobs)


def run(args) -> int:
    check_arguments(args)
    staged = StagedFolder(args.out)
    try:
        # SIGTERM cleans up as Ctrl-C does: workers, staging folder
        with terminate_as_interrupt(), torch_threads(args.threads):
            experiment(args, staged)
        staged.commit()  # the rooms and checkpoints (beside staged.path) go with the staging folder
    except BaseException:
        staged.discard()
        raise
    print(f"wrote {args.out}/: results.md, results.json, pictures, logs/")
    return 0


def experiment(args, staged: StagedFolder) -> None:
    """Every run, then the report, into staged.path."""
    machine = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "jobs": args.jobs,
               "load_before": os.getloadavg()}
    started = time.monotonic()
    out = staged.path
    (out / "logs").mkdir(parents=True)
    jobs = []
    for world in args.world_list:
        for seed in range(args.seeds):  # new rooms for each world and seed, the same for every variant
            paths = make_data(staged.staging / "data" / f"{world}_{seed}", world, seed, args)
            jobs += [{"args": args, "world": world, "seed": seed, "variant": v, "paths": paths,
                      "run_dir": staged.staging / "runs" / f"{world}_{seed}_{v}",
                      "log": out / "logs" / f"{world}_seed{seed}_{v}.log"} for v in args.variant_list]
    results, pictures = [], {}
    with tqdm(total=len(jobs), desc="text-prior", unit="run") as bar:
        for r in _results(jobs, args.jobs):
            picture = r.pop("picture")
            if picture is not None:
                pictures[(r["world"], r["variant"])] = picture
            results.append(r)
            rows = r["metrics"]
            bar.update(1)
            tqdm.write(f"{r['world']} seed {r['seed']} {r['variant']}: AbsRel {rows['right']['abs_rel']:.3f}"
                       + (f" (shuffled {rows['shuffled']['abs_rel']:.3f}, constant {rows['constant']['abs_rel']:.3f})"
                          if "shuffled" in rows else "") + f", {r['train_seconds']:.0f} s training")
    order = {key: i for i, key in enumerate((j["world"], j["seed"], j["variant"]) for j in jobs)}
    results.sort(key=lambda r: order[(r["world"], r["seed"], r["variant"])])
    machine["load_after"] = os.getloadavg()
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("world_list", "variant_list")}
    settings["recipe"] = RECIPE
    settings["command_line"] = command_line(args)
    report.write(out, results, pictures, settings, machine, round(time.monotonic() - started))
