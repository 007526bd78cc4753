"""Parameters per part and FLOPs of a model config, counted on PyTorch's meta device
(no weights are allocated, so the paper config counts on a laptop in seconds).

FLOPs are for one 3-channel image, batch 1; a multiply-add counts as 2 FLOPs (MACs are
half). The text encoder's FLOPs are for one new text: a cached text costs none.
"""
import json


def add_arguments(parser):
    parser.add_argument("--config", default="config/model/paper.yaml",
                        help="model config: a YAML path or a name under config/model (tiny, paper); default %(default)s")
    parser.add_argument("--height", type=int, default=480, help="input height for FLOPs (default %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="input width for FLOPs (default %(default)s)")
    parser.add_argument("--variant", choices=["baseline", "trca", "tbcp", "full"],
                        help="count a Table 3 ablation variant instead of the config's own switches")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    from textdepth_ros.errors import UserError
    from textdepth_ros.model.config import load_model_config
    from textdepth_ros.model.counting import model_report  # torch: imported only to run
    from textdepth_ros.model.network import PARTS

    if args.height < 1 or args.width < 1:
        raise UserError("--height and --width must be positive")
    report = model_report(load_model_config(args.config, args.variant), args.height, args.width)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    params, flops = report["parameters"], report["flops"]
    print(f"{report['config']} ({report['variant']}) at {args.height}x{args.width}")
    print(f"{'part':<14}{'params (M)':>12}{'GFLOPs':>12}{'GMACs':>10}")
    for part in (*PARTS, "total"):
        print(f"{part:<14}{params[part] / 1e6:>12.2f}{flops[part] / 1e9:>12.1f}{flops[part] / 2e9:>10.1f}")
    print(f"{'trainable':<14}{params['trainable'] / 1e6:>12.2f}   (the CLIP text tower is frozen)")
    return 0
