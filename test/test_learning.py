"""Training learns, not just runs: a short CPU training of the full model (TRCA + TBCP) in
the scale-in-words world lowers held-out AbsRel far below its step-0 value, and the
trained model reads the room's size from the description: with the description of
another size, the same pictures get much worse depth. Seeded.

The margins come from measured runs of exactly this setup with seeds 0, 1, 2 (the test
runs seed 0): held-out AbsRel at step 0 0.83 / 0.69 / 0.74, trained 0.40 / 0.31 / 0.30
(0.41-0.48 of step 0; asserted: below 0.65 of it); with a description of another size
0.68 / 0.46 / 0.77 (the right text's AbsRel 0.40-0.68 of the wrong one's; asserted: below
0.85); depth correlates with the truth within each image, 0.67 / 0.60 / 0.53 on average
(asserted: above 0.35; a flat map, which the scale alone gives, has none).
"""
import numpy as np
import pytest
import torch

from textdepth_ros.data import scale_world
from textdepth_ros.data.dataset import ListDataset
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.data.nyu import read_list
from textdepth_ros.data.scene_text import SceneText
from textdepth_ros.experiments.text_controls import load_test_set, predictions, score
from textdepth_ros.experiments.text_prior import RECIPE
from textdepth_ros.model import build_model
from textdepth_ros.train import train
from textdepth_ros.training.config import load_train_config

STEPS, LR, SEED = 200, 2e-3, 0


def wrong_size(text: str) -> str:
    """The same phrasing for a room of another size (two sizes up, cyclically: x2 to x4 off)."""
    for size in range(len(scale_world.SIZES)):
        for template in range(len(scale_world.TEMPLATES)):
            if scale_world.describe(size, template) == text:
                return scale_world.describe((size + 2) % len(scale_world.SIZES), template)
    raise AssertionError(f"not a scale-world text: {text!r}")


@pytest.fixture(scope="module")
def trained(repo_root, tmp_path_factory):
    """The micro model, variant full, 200 steps of batch 4 on 80 images (20 rooms) at
    48x64, lr 2e-3; held-out: 20 images of 5 other rooms. One torch thread, as measured:
    on 2 cores with one other busy process, 2 threads took 107 s here and 1 thread 16 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield _train(repo_root, tmp_path_factory)
    finally:
        torch.set_num_threads(threads)


def _train(repo_root, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("learn")
    paths = generate_dataset(root / "data", n_train=80, n_test=20, height=48, width=64, seed=SEED, world="scale")
    test = load_test_set(ListDataset(paths["root"], read_list(paths["test_list"]),
                                     SceneText(captions_dir=paths["captions_dir"])))
    torch.manual_seed(SEED)  # train() seeds the same way: this is the run's step-0 model
    untrained = build_model("micro", variant="full", pretrained=False).eval()
    step0 = score(predictions(untrained, test, test["text"]), test["depth"])
    cfg = load_train_config(repo_root / "config/train_tiny.yaml", RECIPE + [
        "model=micro", "variant=full", f"data.root={paths['root']}", f"data.train_list={paths['train_list']}",
        "data.test_list=", f"data.captions_dir={paths['captions_dir']}", f"log.out_dir={root / 'run'}",
        f"train.seed={SEED}", f"train.lr={LR}", f"train.epochs={-(-STEPS * 4 // 80)}", f"train.max_steps={STEPS}"])
    model = train(cfg)["model"].eval()
    return {"test": test, "step0": step0, "model": model}


def test_short_training_lowers_held_out_abs_rel(trained):
    test = trained["test"]
    step0 = trained["step0"]["abs_rel"]
    pred = predictions(trained["model"], test, test["text"])
    after = score(pred, test["depth"])
    assert after["abs_rel"] < 0.65 * step0, (step0, after)
    # ... and not only by the scale: the depth follows the room within each image
    correlation = [np.corrcoef(p[g > 0], g[g > 0])[0, 1] for p, g in zip(pred, test["depth"])]
    assert np.mean(correlation) > 0.35, correlation


def test_full_model_reads_the_room_size_from_the_text(trained):
    test, model = trained["test"], trained["model"]
    right = score(predictions(model, test, test["text"]), test["depth"])
    wrong = score(predictions(model, test, [wrong_size(t) for t in test["text"]]), test["depth"])
    assert right["abs_rel"] < 0.85 * wrong["abs_rel"], (right, wrong)
