"""Turn a PixelFormer checkpoint (its released nyu.pth / kitti.pth, or one its train.py
wrote) into a textdepth checkpoint of the `baseline` variant, which computes what
PixelFormer's code computes (same depth to fp32 rounding, tested against its code). The
result works wherever a checkpoint does:

  textdepth import-pixelformer --checkpoint nyu.pth --out model/pixelformer_nyu.safetensors
  textdepth import-pixelformer --checkpoint kitti.pth --dataset kitti --out model/pixelformer_kitti.safetensors
  textdepth predict --checkpoint model/pixelformer_nyu.safetensors --image test/data/coffee_480x640.jpg --out out/coffee.npy

The Swin size and window and the decoder widths are read from the tensors; the depth
range and the camera are not stored in the file, so --dataset says which it was trained
on: nyu (max depth 10 m; NYU's Kinect, 518.8579 px at 640x480, the focal length of
PixelFormer's NYU lists and dataloader) or kitti (80 m; 721.5377 px at 1216x352: the
2011_09_26 calibration, the date with the most KITTI drives, at the size PixelFormer's
KITTI evaluation feeds the network, its kb_crop of the raw ~1242x375 frames. Its KITTI
lists give each drive's own focal length, 707.05-721.54 px, which the network never
reads, so a KITTI model carries that 2 % spread anyway). The camera is recorded in the
checkpoint for focal scaling (docs/camera-scale.md). The file is read with
torch.load(weights_only=True): nothing in it can run code.
"""
from textdepth_ros.data.nyu import NYU_FOCAL
from textdepth_ros.camera_scale import Camera

# dataset -> (PixelFormer's max_depth, the training camera it recorded)
DATASETS = {
    "nyu": (10.0, Camera(NYU_FOCAL, NYU_FOCAL, 640, 480)),
    "kitti": (80.0, Camera(721.5377, 721.5377, 1216, 352)),
    "unknown": (10.0, None),
}


def add_arguments(parser):
    parser.add_argument("--checkpoint", required=True, help="PixelFormer checkpoint (.pth/.pt; {'model': state_dict}, "
                                                            "with or without DataParallel's 'module.' prefixes)")
    parser.add_argument("--out", required=True, help="output textdepth checkpoint (.safetensors); written atomically")
    parser.add_argument("--dataset", choices=list(DATASETS),
                        help="what it was trained on: sets the training camera and the default --max-depth "
                             "(nyu: 518.8579 px at 640x480, 10 m; kitti: 721.5377 px at 1216x352, 80 m; unknown: "
                             "no camera recorded, 10 m). Default: nyu, or kitti with --max-depth 80 (PixelFormer's "
                             "KITTI setting)")
    parser.add_argument("--max-depth", type=float,
                        help="the max_depth PixelFormer was trained with (default: the dataset's, 10 for NYU, "
                             "80 for KITTI)")


def choose_dataset(dataset, max_depth) -> str:
    """--dataset, or what PixelFormer's own scripts mean by the max depth alone."""
    if dataset:
        return dataset
    return "kitti" if max_depth == 80.0 else "nyu" if max_depth in (None, 10.0) else "unknown"


def run(args) -> int:
    from textdepth_ros.model.pixelformer_import import import_pixelformer

    dataset = choose_dataset(args.dataset, args.max_depth)
    default_depth, camera = DATASETS[dataset]
    max_depth = default_depth if args.max_depth is None else args.max_depth
    config = import_pixelformer(args.checkpoint, args.out, max_depth, camera)
    bb, bins = config["backbone"], config["bins"]
    trained_with = (f"training camera {camera.describe()} ({dataset})" if camera else
                    "no training camera recorded (set one with `textdepth set-camera`)")
    print(f"{args.checkpoint} -> {args.out}: PixelFormer ({bb['timm_name']}), baseline variant, "
          f"bins {bins['fixed_min']:g}..{bins['dataset_max']:g} m, {trained_with}")
    return 0
