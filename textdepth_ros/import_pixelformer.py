"""Turn a PixelFormer checkpoint (its released nyu.pth / kitti.pth, or one its train.py
wrote) into a textdepth checkpoint of the `baseline` variant, which computes what
PixelFormer's code computes (same depth to fp32 rounding, tested against its code). The
result works wherever a checkpoint does:

  textdepth import-pixelformer --checkpoint nyu.pth --out model/pixelformer_nyu.safetensors
  textdepth import-pixelformer --checkpoint kitti.pth --max-depth 80 --out model/pixelformer_kitti.safetensors
  textdepth predict --checkpoint model/pixelformer_nyu.safetensors --image test/data/coffee_480x640.jpg --out out/coffee.npy

The Swin size and window and the decoder widths are read from the tensors; the depth
range is not stored in the file, so give --max-depth (PixelFormer: 10 for NYU, 80 for
KITTI). The file is read with torch.load(weights_only=True): nothing in it can run code.
"""


def add_arguments(parser):
    parser.add_argument("--checkpoint", required=True, help="PixelFormer checkpoint (.pth/.pt; {'model': state_dict}, "
                                                            "with or without DataParallel's 'module.' prefixes)")
    parser.add_argument("--out", required=True, help="output textdepth checkpoint (.safetensors); written atomically")
    parser.add_argument("--max-depth", type=float, default=10.0,
                        help="the max_depth PixelFormer was trained with: 10 for NYU (default), 80 for KITTI")


def run(args) -> int:
    from textdepth_ros.model.pixelformer_import import import_pixelformer

    config = import_pixelformer(args.checkpoint, args.out, args.max_depth)
    bb, bins = config["backbone"], config["bins"]
    print(f"{args.checkpoint} -> {args.out}: PixelFormer ({bb['timm_name']}), baseline variant, "
          f"bins {bins['fixed_min']:g}..{bins['dataset_max']:g} m")
    return 0
