"""One-off check (not a timing): the paper config's `full` variant warm-started from an
imported PixelFormer checkpoint computes PixelFormer's depth, at the paper's sizes.

PixelFormer's own network (../shared/reference/PixelFormer, via test/pixelformer_reference.py)
at Swin-L window 7 with every weight randomised -> its state dict imported as our baseline
-> `warm_start` into config/model/paper.yaml's full variant (Swin-L + CLIP ViT-L/14 text
tower, random: no CLIP weights here; the text width, 768, is what matters) -> both on the
real photo test/data/coffee_480x640.jpg, fp32, CPU. Prints the per-pixel max relative
difference against PixelFormer and the one warm_start itself measured (against our
baseline on the same weights, what `train --init-from` logs). Needs ~6 GB of memory.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import common  # noqa: F401 - puts the checkout on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "test"))  # the reference network's loader lives with the tests


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", default="a photo of a coffee cup on a wooden table", help="scene text")
    args = parser.parse_args(argv)

    import cv2
    import numpy as np
    import torch

    from pixelformer_reference import build_reference, normalize
    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import write_checkpoint
    from textdepth_ros.model.pixelformer_import import convert_pixelformer
    from textdepth_ros.model.warm_start import describe_warm_start, warm_start

    rgb = cv2.cvtColor(cv2.imread(str(ROOT / "test/data/coffee_480x640.jpg")), cv2.COLOR_BGR2RGB)
    image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    reference = build_reference("large07", seed=1)
    with torch.no_grad():
        expected = reference(normalize(image))
    state, config = convert_pixelformer(reference.state_dict(), 10.0)
    del reference
    with tempfile.TemporaryDirectory() as tmp:
        path = write_checkpoint(Path(tmp) / "pixelformer_large07.safetensors", state, config)
        del state
        torch.manual_seed(0)
        model = build_model("paper", variant="full", pretrained=False)
        report = warm_start(model, path, pretrained=False, probe=(image, args.text))
    print(describe_warm_start(report))
    with torch.no_grad():
        depth = model.eval()(image, texts=[args.text])["depth"]
    per_pixel = float(((depth - expected).abs() / expected.abs()).max())
    of_max = float((depth - expected).abs().max() / expected.abs().max())
    print(f"paper full, warm-started, vs PixelFormer (Swin-L, same weights), coffee 480x640 fp32 CPU: "
          f"max relative difference per pixel {per_pixel:.1e}, of the max {of_max:.1e} "
          f"(reference depth {expected.min():.2f}..{expected.max():.2f} m, std {expected.std():.2f})")
    return {"per_pixel": per_pixel, "of_max": of_max, "step0_difference": report["step0_difference"]}


if __name__ == "__main__":
    main()
