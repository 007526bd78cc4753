"""Show or set the training camera a checkpoint records: the focal length in pixels the
network was trained with, at the image size it refers to (camera_scale.py). Checkpoints
from `textdepth train` and `textdepth import-pixelformer` record it; for an older one (or
one trained elsewhere) set it here, and focal scaling (`focal_scaling: auto`) maps every
other camera onto it (docs/camera-scale.md).

  textdepth set-camera model/old.safetensors                          (show it)
  textdepth set-camera model/old.safetensors --fx 518.8579 --width 640 --height 480
  textdepth set-camera model/old.safetensors --dataset nyu --out model/old_nyu.safetensors
  textdepth set-camera model/old.safetensors --clear

The checkpoint is rewritten atomically (in place, or to --out): its tensors, model config
and other metadata are kept exactly.
"""
from pathlib import Path


def add_arguments(parser):
    parser.add_argument("checkpoint", help="textdepth checkpoint (.safetensors)")
    given = parser.add_argument_group("the camera (give none of these to show the recorded one)")
    given.add_argument("--fx", type=float, help="horizontal focal length in pixels of the training images")
    given.add_argument("--fy", type=float, help="vertical focal length in pixels (default: --fx)")
    given.add_argument("--width", type=int, help="width in pixels of the images --fx refers to")
    given.add_argument("--height", type=int, help="height in pixels of the images --fy refers to")
    given.add_argument("--dataset", choices=["nyu", "kitti"],
                       help="the camera import-pixelformer records for this dataset (nyu: 518.8579 px at 640x480)")
    given.add_argument("--clear", action="store_true", help="remove the recorded camera (focal scaling then stays off)")
    parser.add_argument("--out", help="write the result here instead of replacing the checkpoint (.safetensors)")


def _camera(args):
    from textdepth_ros.errors import UserError
    from textdepth_ros.import_pixelformer import DATASETS
    from textdepth_ros.camera_scale import camera_from_record

    manual = [args.fx, args.fy, args.width, args.height]
    if args.dataset and any(v is not None for v in manual):
        raise UserError("give either --dataset or --fx/--fy/--width/--height, not both")
    if args.dataset:
        return DATASETS[args.dataset][1]
    if args.fx is None or args.width is None or args.height is None:
        raise UserError("a camera needs --fx, --width and --height (or --dataset nyu|kitti)")
    fy = args.fx if args.fy is None else args.fy
    record = {"fx": args.fx, "fy": fy, "width": args.width, "height": args.height}
    return camera_from_record(record, "--fx/--fy/--width/--height")


def run(args) -> int:
    from textdepth_ros.errors import UserError
    from textdepth_ros.model.checkpoint import CAMERA, read_checkpoint_config, set_checkpoint_camera

    changing = args.clear or args.dataset or any(v is not None for v in (args.fx, args.fy, args.width, args.height))
    if not changing:
        if args.out:
            raise UserError("--out needs a camera to set (or --clear)")
        camera = read_checkpoint_config(args.checkpoint)[1].get(CAMERA)
        print(f"{args.checkpoint}: training camera {camera.describe() if camera else 'unknown (none recorded)'}")
        return 0
    if args.clear and (args.dataset or any(v is not None for v in (args.fx, args.fy, args.width, args.height))):
        raise UserError("--clear takes no camera")
    out = Path(args.out or args.checkpoint)
    if out.suffix != ".safetensors":
        raise UserError(f"the output must be a .safetensors file, got {out}")
    camera = None if args.clear else _camera(args)  # checked before the checkpoint is read
    before = set_checkpoint_camera(args.checkpoint, camera, out)
    now = camera.describe() if camera else "unknown (none recorded)"
    print(f"{out}: training camera {now} (was {before.describe() if before else 'unknown'})")
    return 0
