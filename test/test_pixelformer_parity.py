"""Our `baseline` variant computes what PixelFormer computes: the reference network
(../shared/reference/PixelFormer) with random weights, those weights renamed into ours
by the importer, the same input -> the same features at every stage and the same depth.

Relative difference = max |ours - reference| / max |reference| over a tensor, and for
the depth also per pixel, max |ours - reference| / |reference|. In fp32 both stay below
1e-5 (measured ~5e-7 per pixel: on CPU our window attention does PixelFormer's own
softmax(q k^T) v); a float64 run at a small size checks the arithmetic to 1e-12.
"""
import copy

import pytest
import torch

from pixelformer_reference import build_reference, normalize
from textdepth_ros.model.network import TextDepthNet
from textdepth_ros.model.pixelformer_import import convert_pixelformer

FP32_TOLERANCE = 1e-5
STAGES = ("e1", "e2", "e3", "e4", "q4", "sam4", "sam3", "sam2", "sam1", "centres", "depth")


def ours_from(reference, max_depth=10.0) -> TextDepthNet:
    state, config = convert_pixelformer(reference.state_dict(), max_depth)
    model = TextDepthNet(config).eval()
    model.load_state_dict(state, strict=True)
    return model


def capture(model, modules: dict, forward):
    """Run `forward()` once and return what each named submodule output (forward hooks)."""
    seen = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
             for name, m in modules.items()]
    try:
        seen["depth"] = forward()
    finally:
        for h in hooks:
            h.remove()
    return seen


def reference_stages(ref, images, normalise=normalize) -> dict:
    modules = dict(backbone=ref.backbone, q4=ref.decoder, sam4=ref.sam4, sam3=ref.sam3, sam2=ref.sam2, sam1=ref.sam1,
                   centres=ref.bcp)
    out = capture(ref, modules, lambda: ref(normalise(images)))
    out.update(zip(("e1", "e2", "e3", "e4"), out.pop("backbone")))
    out["centres"] = out["centres"].flatten(1)
    return out


def our_stages(model, images) -> dict:
    modules = dict(backbone=model.backbone, q4=model.pqi, centres=model.tbcp,
                   **{f"sam{i + 1}": stage for i, stage in enumerate(model.sam.stages)})
    out = capture(model, modules, lambda: model(images)["depth"])
    out.update(zip(("e1", "e2", "e3", "e4"), out.pop("backbone")))
    out["centres"] = out["centres"][0]
    return out


def relative_differences(ours: dict, reference: dict) -> dict:
    diffs = {k: ((ours[k] - reference[k]).abs().max() / reference[k].abs().max()).item() for k in STAGES}
    diffs["depth_per_pixel"] = ((ours["depth"] - reference["depth"]).abs() / reference["depth"].abs()).max().item()
    return diffs


def compare(ours, reference, images, normalise=normalize):
    with torch.no_grad():
        expected = reference_stages(reference, images, normalise)
        got = our_stages(ours, images)
    for k in STAGES:
        assert got[k].shape == expected[k].shape, k
    # random weights that still give a scene-like spread of depths, or the test proves little
    assert expected["depth"].std() > 0.3, "reference depth is nearly constant: randomise the weights harder"
    return relative_differences(got, expected)


@pytest.fixture(scope="module")
def swin_t():
    reference = build_reference("tiny07", seed=0)
    return reference, ours_from(reference)


@pytest.mark.parametrize("size", [(480, 640), (352, 704), (416, 544)])
def test_swin_t_baseline_equals_pixelformer_fp32(swin_t, size):
    reference, ours = swin_t
    images = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(sum(size)))
    diffs = compare(ours, reference, images)
    print(f"Swin-T {size}: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    assert max(diffs.values()) <= FP32_TOLERANCE, diffs


def test_swin_l_baseline_equals_pixelformer_fp32_at_416x544():
    reference = build_reference("large07", seed=1)
    ours = ours_from(reference)
    images = torch.rand(1, 3, 416, 544, generator=torch.Generator().manual_seed(5))
    diffs = compare(ours, reference, images)
    print("Swin-L (416, 544): " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    assert max(diffs.values()) <= FP32_TOLERANCE, diffs


def test_same_arithmetic_in_float64(swin_t):
    """Every stage to 1e-12 in fp64 at a size where all four stages need padding to whole
    windows (64x72, 32x36, 16x18, 8x9): the shifted-window order, the SAM residual and the
    PQI norms all show up here far above rounding."""
    reference, ours = (copy.deepcopy(m).double() for m in swin_t)
    images = torch.rand(2, 3, 256, 288, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    # our float32 mean/std buffers, cast: torchvision's come from Python floats, 3e-8 apart in fp64
    diffs = compare(ours, reference, images, normalise=lambda x: (x - ours.mean) / ours.std)
    print("Swin-T fp64 (256, 288): " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    assert max(diffs.values()) <= 1e-12, diffs
