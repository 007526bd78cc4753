"""Export the network to ONNX for onnxruntime / TensorRT, at one fixed input size.

Inputs: `image` float32 [1, 3, H, W], RGB in [0, 1] (the model normalises and pads
inside), and `text_embedding` float32 [1, C], the CLIP text embedding (the variants
without text have no such input). Outputs: `depth` and `uncertainty` float32
[1, 1, H, W] in metres, `depth_range` float32 [1, 2] (the bins' d_min, d_max).
The CLIP text tower is not exported: it stays in torch and runs once per new text
(`OnnxDepthEstimator` in onnx_runtime.py does exactly that).

After writing, the file is run with onnxruntime on CPU against the eager torch forward
on the same input; the largest relative depth difference is printed and must stay
<= 1e-3 (fp32), else the command fails. TensorRT engine: see docs/onnx-tensorrt.md.
"""
import json
import sys
import time
from pathlib import Path

from textdepth_ros.atomic_io import atomic_files
from textdepth_ros.image_limits import DEFAULT_MAX_PIXELS, check_min_side, check_pixels, describe_limit
from textdepth_ros.metrics import max_rel_diff

MAX_REL_DIFF = 1e-3
# torch's ONNX exporter writes opset 18 and converts down or up: below 18 the conversion of
# this graph fails (17 asked, 18 written: measured, torch 2.14); 23 is its ONNX_MAX_OPSET.
MIN_OPSET, MAX_OPSET = 18, 23
INPUTS, OUTPUTS = ("image", "text_embedding"), ("depth", "uncertainty", "depth_range")


def add_arguments(parser):
    parser.add_argument("--onnx", required=True, help="output .onnx file")
    parser.add_argument("--config", default="tiny",
                        help="model config (name or YAML); ignored with --checkpoint, which carries its own; default %(default)s")
    parser.add_argument("--checkpoint", help="trained weights (.safetensors); without: untrained random weights (warned)")
    parser.add_argument("--height", type=int, default=480, help="input height the file is built for (default %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="input width the file is built for (default %(default)s)")
    parser.add_argument("--opset", type=int, default=MIN_OPSET,
                        help=f"ONNX opset, {MIN_OPSET}-{MAX_OPSET} (default %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse a --height x --width over this many pixels before any work (tracing and the "
                             f"check run the network at that size; default {DEFAULT_MAX_PIXELS} = "
                             f"{describe_limit(DEFAULT_MAX_PIXELS)}; 0 = no limit)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-torch comparison")


def network_for_export(model):
    """The exported module: the network's forward with outputs as a tuple."""
    import torch

    class ExportedNetwork(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image, text_embedding=None):
            out = self.net(image, text_embedding=text_embedding)
            return out["depth"], out["uncertainty"], out["depth_range"]

    return ExportedNetwork(model).eval()


def example_inputs(model, height: int, width: int, text: str = "a room"):
    import torch

    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, height, width, generator=gen)
    embedding = model.encode_text([text]) if model.uses_text else None
    return image, embedding


def export_onnx(model, path, height: int, width: int, opset: int = 18) -> dict:
    """Write `model`'s network (CPU, eval, fp32) to `path`; returns the metadata stored in it."""
    import onnx
    import torch

    check_min_side(height, width, what="--width x --height")  # the network works at 1/32 of the image
    path = Path(path)
    model = model.eval().to("cpu")
    image, embedding = example_inputs(model, height, width)
    names = list(INPUTS[: 2 if embedding is not None else 1])
    args = (image, embedding) if embedding is not None else (image,)
    # The text tower is not traced (the embedding is an input), so none of its weights
    # end up in the file: the exporter keeps only the initializers the graph uses.
    with torch.no_grad():
        program = torch.onnx.export(network_for_export(model), args, input_names=names, output_names=list(OUTPUTS),
                                    opset_version=opset, dynamo=True, external_data=False)
    metadata = {"textdepth_config": json.dumps(model.config), "textdepth_height": str(height),
                "textdepth_width": str(width), "textdepth_text_width": str(embedding.shape[1] if embedding is not None else 0),
                "textdepth_inputs": ",".join(names)}
    proto = program.model_proto
    metadata["textdepth_opset"] = str(next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset))
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    with atomic_files(path, what="ONNX file") as (tmp,):  # never a half-written file at `path`
        onnx.save(proto, str(tmp))
    return metadata


def compare_with_torch(model, path, height: int, width: int) -> float:
    """Largest relative depth difference between onnxruntime (CPU) and the eager forward."""
    import onnxruntime as ort
    import torch

    image, embedding = example_inputs(model, height, width, text="a kitchen with a table")
    with torch.inference_mode():
        ref = model.eval().to("cpu")(image, text_embedding=embedding)["depth"].numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"image": image.numpy()}
    if embedding is not None:
        feeds["text_embedding"] = embedding.numpy()
    depth = session.run(["depth"], feeds)[0]
    return max_rel_diff(depth, ref)


def check_arguments(args) -> None:
    """The size and opset, refused before any model is built or traced (a --height of
    100000 traced for ten minutes and 3.8 GB; --opset 7 exported opset 18 and exited 0)."""
    from textdepth_ros.errors import UserError

    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        raise UserError(f"--opset {args.opset} is not supported: the exporter writes opsets {MIN_OPSET}-{MAX_OPSET}")
    if args.max_pixels < 0:
        raise UserError(f"--max-pixels must be 0 (no limit) or positive, got {args.max_pixels}")
    check_pixels(args.height, args.width, args.max_pixels, "--width x --height", "lower them or raise --max-pixels")
    check_min_side(args.height, args.width, what="--width x --height")


def run(args) -> int:
    from textdepth_ros.errors import UserError
    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import load_checkpoint

    out = Path(args.onnx)
    if out.suffix != ".onnx":
        raise UserError(f"--onnx must end in .onnx, got {out}")
    check_arguments(args)
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint)
    else:
        print("WARNING: no --checkpoint: exporting UNTRAINED random weights.", file=sys.stderr)
        model = build_model(args.config, pretrained=True)
    start = time.perf_counter()
    metadata = export_onnx(model, out, args.height, args.width, args.opset)
    size_mb = out.stat().st_size / 1e6
    opset = int(metadata["textdepth_opset"])
    print(f"wrote {out} ({size_mb:.0f} MB, {args.height}x{args.width}, opset {opset}) "
          f"in {time.perf_counter() - start:.0f} s")
    if opset != args.opset:
        print(f"WARNING: opset {args.opset} was asked for, but the exporter could not convert the graph to it: "
              f"the file is opset {opset}", file=sys.stderr)
    if args.no_check:
        return 0
    diff = compare_with_torch(model, out, args.height, args.width)
    ok = diff <= MAX_REL_DIFF
    print(f"onnxruntime (CPU) vs torch eager: max relative depth difference {diff:.2e} "
          f"({'ok' if ok else 'TOO LARGE'}, limit {MAX_REL_DIFF:g})")
    return 0 if ok else 1
