"""Train on NYU Depth v2 (or any list in its layout). The default recipe
(config/train_nyu.yaml) is what PixelFormer's code ran: Adam lr 4e-5 without weight
decay, poly decay 0.9 to 0.1x, SILog loss, border mask / rotation / CutDepth / flip /
colour jitter in its dataloader's order, fp32, evaluation every 1000 steps keeping the
best checkpoint per metric. Our variants are options (train.optimizer adamw,
train.amp bf16, augment.cutdepth paper).

  textdepth train --config config/train_nyu.yaml --set data.root=... --out runs/nyu
  torchrun --nproc_per_node 8 -m textdepth_ros.cli train --config ...   (DDP, NCCL)

Writes OUT/best_<metric>.safetensors (one per eval.best_metrics), OUT/last.safetensors +
OUT/last_state.pt (resume with --resume), OUT/tb/ (TensorBoard), OUT/texts.txt. Every
checkpoint records the training camera: the train list's focal length at its images' size
(training/camera_record.py), so serving can map another camera onto it.
train.batch_size is the global batch (split over processes, as PixelFormer does).
"""
import math
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.data import Subset
from tqdm import tqdm

from textdepth_ros.data.augment import AugmentConfig
from textdepth_ros.data.dataset import ListDataset, Loader
from textdepth_ros.data.kitti import KB_CROP, load_kitti_depth, read_kitti_list
from textdepth_ros.data.nyu import load_depth, read_list
from textdepth_ros.data.scene_text import SceneText
from textdepth_ros.errors import UserError
from textdepth_ros.metrics import protocol_crop
from textdepth_ros.model import build_model
from textdepth_ros.model.scene_labels import RECORD_KEY, scene_text_record
from textdepth_ros.model.warm_start import describe_warm_start, warm_start
from textdepth_ros.paths import config_dir
from textdepth_ros.training import distributed, state
from textdepth_ros.training.best import update_best
from textdepth_ros.training.camera_record import list_camera
from textdepth_ros.training.config import load_train_config, model_config
from textdepth_ros.training.evaluate import evaluate_model, shard
from textdepth_ros.training.freeze import describe_trainable, freeze
from textdepth_ros.training.loss import silog_loss
from textdepth_ros.training.optim import build_optimizer, build_scheduler
from textdepth_ros.training.tblog import log_panel
from textdepth_ros.training.text_table import TextTable

AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_arguments(parser) -> None:
    parser.add_argument("--config", default=str(config_dir() / "train_nyu.yaml"),
                        help="training YAML (default config/train_nyu.yaml: PixelFormer's recipe with the paper's model)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry, e.g. --set data.root=/data/nyu --set train.epochs=5 (repeatable)")
    parser.add_argument("--out", help="run folder (overrides log.out_dir)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.safetensors + OUT/last_state.pt (refused if they are not one save)")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="start from this checkpoint's weights wherever name and shape match (e.g. PixelFormer's, "
                             "imported with import-pixelformer); TRCA / TBCP start so that the model keeps its depth "
                             "(measured on the first training image and printed; docs/warm-start.md); "
                             "ignored with --resume")


def run(args) -> int:
    cfg = load_train_config(args.config, args.set)
    if args.out:
        cfg["log"]["out_dir"] = args.out
    ctx = distributed.setup(cfg["train"]["device"])
    try:
        train(cfg, ctx, resume=args.resume, init_from=args.init_from)
    finally:
        distributed.cleanup(ctx)
    return 0


def _datasets(cfg):
    """Train and test datasets; every listed file is checked before the model is built.
    KITTI: BTS's lists, depth PNG / 256 under the ground-truth roots, the KB crop."""
    d = cfg["data"]
    kitti = d["dataset"] == "kitti"
    read, depth_loader = (read_kitti_list, load_kitti_depth) if kitti else (read_list, load_depth)
    scene_text = SceneText(d["text_template"], d["captions_dir"], d["text"])
    train_set = ListDataset(d["root"], read(d["train_list"]), scene_text, AugmentConfig(**cfg["augment"]),
                            seed=cfg["train"]["seed"], depth_loader=depth_loader, list_name="train list",
                            depth_root=d["gt_root"], kb_crop=kitti)
    test_set = None
    if d["test_list"]:
        # BTS/PixelFormer keep the test images in another tree (data_path_eval, gt_path_eval)
        test_root = d["test_root"] or d["root"]
        test_set = ListDataset(test_root, [s for s in read(d["test_list"]) if s.depth], scene_text,
                               depth_loader=depth_loader, list_name="test list",
                               depth_root=d["test_gt_root"] or d["gt_root"] or test_root, kb_crop=kitti)
    return train_set, test_set


def _loaders(cfg, ctx, train_set, test_set, per_proc):
    t, e, workers = cfg["train"], cfg["eval"], cfg["data"]["num_workers"]
    sampler = distributed.ResumableSampler(len(train_set), ctx, t["seed"], t["batch_size"] * t["accumulate"])
    # Own generator, reseeded per epoch: starting a loader must not draw from the global
    # RNG (dropout / drop-path), and its worker seeds then depend on (seed, epoch) only.
    train_loader = Loader(train_set, batch_size=per_proc, sampler=sampler, num_workers=workers,
                          pin_memory=ctx.device.type == "cuda", generator=torch.Generator())
    test_loader = None
    if test_set is not None:
        n = min(len(test_set), e["limit"] or len(test_set))
        test_loader = Loader(Subset(test_set, shard(n, ctx.rank, ctx.world)), batch_size=e["batch_size"],
                             num_workers=workers, generator=torch.Generator().manual_seed(0))
    return sampler, train_loader, test_loader


def _forward(ddp, images, texts, embedding):
    """Depth of a training batch; a BatchNorm that gets one value per channel (batch 1
    per process and a 1x1 feature map) is a configuration problem, said in one line."""
    try:
        if embedding is None:
            return ddp(images, texts=texts)["depth"]
        return ddp(images, text_embedding=embedding)["depth"]
    except ValueError as exc:
        if "Expected more than 1 value per channel" not in str(exc):
            raise
        raise UserError("a BatchNorm layer of this model sees one value per channel with "
                        f"{images.shape[0]} image(s) per process: raise train.batch_size, "
                        "or set train.sync_bn true on GPUs") from None


def train(cfg: dict, ctx=None, resume: bool = False, init_from=None) -> dict:
    """The training loop; returns a summary (losses, throughput, last eval, bests, the
    trained model unwrapped from DDP)."""
    ctx = ctx or distributed.Context(torch.device("cpu"))
    t, e, lg = cfg["train"], cfg["eval"], cfg["log"]
    out = Path(lg["out_dir"])
    amp_dtype = AMP[t["amp"]]
    if "fp16" in (t["amp"], e["amp"]) and ctx.device.type != "cuda":
        raise UserError("fp16 autocast needs CUDA (bf16 works on CPU)")
    if t["batch_size"] % ctx.world:
        raise UserError(f"train.batch_size {t['batch_size']} is not divisible by {ctx.world} processes")
    per_proc = t["batch_size"] // ctx.world
    train_set, test_set = _datasets(cfg)
    images_per_step = t["batch_size"] * t["accumulate"]
    if len(train_set) < images_per_step:
        raise UserError(f"{len(train_set)} training images are fewer than one optimizer step needs ({images_per_step})")
    torch.manual_seed(t["seed"])  # identical initial weights on every rank
    warm = init_from and not resume
    model = build_model(model_config(cfg), variant=cfg["variant"], pretrained=t["pretrained"] and not warm)
    if warm:
        # rank 0 measures the start on the first training image, as it is on disk
        probe = ListDataset(train_set.root, train_set.samples[:1], train_set.scene_text,
                            depth_loader=train_set.depth_loader, depth_root=train_set.depth_root,
                            kb_crop=train_set.kb_crop)[0] if ctx.is_main else None
        report = warm_start(model, init_from, pretrained=t["pretrained"], device=ctx.device,
                            probe=(probe["image"][None], probe["text"]) if probe else None)
        if ctx.is_main:
            print(describe_warm_start(report))
    freeze(model, t["freeze"])
    model = model.to(ctx.device)
    if ctx.is_main:
        print(describe_trainable(model))
    sampler, loader, test_loader = _loaders(cfg, ctx, train_set, test_set, per_proc)
    steps_per_epoch = sampler.total // images_per_step
    batches_per_epoch = steps_per_epoch * t["accumulate"]
    optimizer = build_optimizer(model, t["optimizer"], t["lr"], t["weight_decay"])
    scheduler = build_scheduler(optimizer, t["epochs"] * steps_per_epoch, t["end_lr_ratio"], t["poly_power"])
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=t["amp"] == "fp16")  # bf16 needs no scaling
    progress = {"step": 0, "epoch": 0, "batch": 0, "best": {}}
    if resume:
        # rank 0 completes an interrupted save before the others read it (and reads it once)
        checked = state.check_pair(out) if ctx.is_main else None
        ctx.barrier()
        progress = state.load_last(out, model, optimizer, scheduler, scaler, ctx.device, checked)
    texts = Counter(train_set.text(i) for i in range(len(train_set)))
    text_table = TextTable(model, texts) if model.uses_text else None
    ddp = distributed.wrap_model(model, ctx, t["sync_bn"])
    writer = None
    if ctx.is_main:
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        # purge_step: events a killed run logged after its last save are dropped from the curves
        writer = SummaryWriter(str(out / "tb"), purge_step=progress["step"] if resume else None)
        (out / "texts.txt").write_text("".join(f"{n}\t{text}\n" for text, n in texts.most_common()))
        print(f"{len(train_set)} train images, {len(texts)} distinct texts (e.g. {next(iter(texts))!r}); "
              f"{ctx.world} process(es) x {per_proc} images, accumulate {t['accumulate']}, "
              f"{steps_per_epoch} steps/epoch, {t['optimizer']}, amp {t['amp']}, device {ctx.device}")
    camera, camera_line = list_camera(train_set.root, train_set.samples,
                                      size=KB_CROP if cfg["data"]["dataset"] == "kitti" else None)
    if ctx.is_main:
        print(camera_line)
    # The scene types and template behind the texts: what the node's text_source auto chooses from;
    # the camera: its own checkpoint field (camera_scale.py).
    extra = {"train_config": cfg, RECORD_KEY: scene_text_record(cfg["data"]["text_template"], train_set.scene_names()),
             "camera": camera}
    summary = {"losses": [], "images": 0, "seconds": 0.0, "eval": None}

    def evaluate(step):
        distributed.sync_buffers(model, ctx)
        panels = {}
        if model.uses_text:
            model.text_encoder.clear_cache()  # each evaluation encodes its texts afresh: no history
        # Evaluation must not move the training RNG: a resumed run does not repeat it.
        with torch.random.fork_rng(devices=[ctx.device.index or 0] if ctx.device.type == "cuda" else []):
            metrics = evaluate_model(ddp, test_loader, ctx.device, e["flip_tta"], AMP[e["amp"]],
                                     protocol_crop(cfg["data"]["dataset"], e["crop"]), e["min_depth"],
                                     e["max_depth"], progress=False, first_batch_out=panels if ctx.is_main else None)
        summary["eval"] = metrics
        if not ctx.is_main:
            return
        for name, value in metrics.items():
            writer.add_scalar(f"eval/{name}", value, step)
        if panels:
            b = panels["batch"]
            log_panel(writer, "eval/rgb_pred_gt_error", b["image"][0].numpy(), panels["pred"][0, 0], b["depth"][0, 0].numpy(), step)
        better = update_best(out, progress["best"], metrics, step, model, extra, e["best_metrics"])
        tqdm.write(f"step {step}: " + " ".join(f"{k} {metrics[k]:.4f}" for k in ("abs_rel", "rmse", "d1", "silog"))
                   + (f" (new best: {', '.join(better)})" if better else ""))

    def save(step, epoch, batch):
        if batch >= batches_per_epoch:
            epoch, batch = epoch + 1, 0
        progress.update(step=step, epoch=epoch, batch=batch)
        if ctx.is_main:
            state.save_last(out, model, optimizer, scheduler, scaler, progress, extra)
        ctx.barrier()

    step, stop = progress["step"], False
    bar = tqdm(total=t["epochs"] * steps_per_epoch, initial=step, desc="train", unit="step", disable=not ctx.is_main)
    try:
        ddp.train()
        for epoch in range(progress["epoch"], t["epochs"]):
            start_batch = progress["batch"] if epoch == progress["epoch"] else 0
            train_set.set_epoch(epoch)
            sampler.set_epoch(epoch)
            sampler.start = start_batch * per_proc
            loader.generator.manual_seed(t["seed"] + epoch)
            micro, tic = start_batch, time.perf_counter()
            for batch in loader:
                images = batch["image"].to(ctx.device, non_blocking=True)
                gt = batch["depth"].to(ctx.device, non_blocking=True)
                sync = (micro + 1) % t["accumulate"] == 0
                with ddp.no_sync() if ctx.distributed and not sync else nullcontext():
                    with torch.autocast(ctx.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                        embedding = text_table(batch["text"]) if text_table is not None else None
                        pred = _forward(ddp, images, batch["text"], embedding)
                    loss = silog_loss(pred, gt, t["variance_focus"], t["loss_min_depth"])
                    if loss is None:  # no valid pixel: a zero loss keeps DDP's gradient hooks in step
                        loss = pred.sum() * 0.0
                    scaler.scale(loss / t["accumulate"]).backward()
                micro += 1
                summary["losses"].append(float(loss.detach()))
                if amp_dtype != torch.float16 and not math.isfinite(summary["losses"][-1]):
                    # PixelFormer aborts on a NaN loss too; fp16's GradScaler skips such steps itself
                    raise UserError(f"the training loss is {summary['losses'][-1]} at step {step + 1}; stopped "
                                    f"before it reaches the weights (resume from the last save with a lower train.lr)")
                summary["images"] += images.shape[0] * ctx.world
                if not sync:
                    continue
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                summary["seconds"] += time.perf_counter() - tic
                bar.update(1)
                if ctx.is_main and step % lg["log_every"] == 0:
                    writer.add_scalar("train/loss", summary["losses"][-1], step)
                    writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                    writer.add_scalar("train/images_per_s", summary["images"] / max(summary["seconds"], 1e-9), step)
                    bar.set_postfix(loss=f"{summary['losses'][-1]:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if ctx.is_main and lg["image_every"] and step % lg["image_every"] == 0:
                    log_panel(writer, "train/rgb_pred_gt_error", images[0].float().cpu().numpy(),
                              pred[0, 0].detach().float().cpu().numpy(), gt[0, 0].cpu().numpy(), step)
                epoch_done = micro >= batches_per_epoch
                stop = bool(t["max_steps"]) and step >= t["max_steps"]
                # Evaluate before saving, so the saved state holds this evaluation's bests.
                if test_loader is not None and ((e["every_steps"] and step % e["every_steps"] == 0)
                                                or (epoch_done and e["every_epoch"])):
                    evaluate(step)
                if (lg["save_every"] and step % lg["save_every"] == 0) or epoch_done or stop:
                    save(step, epoch, micro)
                if stop or epoch_done:
                    break
                tic = time.perf_counter()
            if stop:
                break
    except BaseException:
        bar.leave = False  # what stays on screen is the error line, not a stale bar
        raise
    finally:
        bar.close()
        if writer is not None:
            writer.close()  # what was logged stays logged, also after an error
    distributed.sync_buffers(model, ctx)
    summary.update(step=step, best=progress["best"], model=model,
                   images_per_s=summary["images"] / max(summary["seconds"], 1e-9))
    if ctx.is_main:
        print(f"done: {step} steps, {summary['images_per_s']:.2f} images/s (training only)")
    return summary
