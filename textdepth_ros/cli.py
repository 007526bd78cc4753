"""`textdepth` entry point. Each subcommand lives in its own module exposing
`add_arguments(parser)` and `run(args) -> int`; modules are imported lazily so that
`textdepth --help` stays fast and a broken optional dependency hits only its command.

A UserError becomes one clear line on stderr and exit code 2, never a traceback.
"""
import argparse
import importlib
import logging
import os
import sys

from textdepth_ros.errors import UserError

INTERRUPTED = 130  # exit status after Ctrl-C or SIGTERM, as shells report SIGINT

# name -> (module, one-line help)
COMMANDS = {
    "info": ("textdepth_ros.info", "parameters per part and FLOPs of a model config"),
    "predict": ("textdepth_ros.predict", "depth of one image + text, saved as .npy and a preview PNG"),
    "demo": ("textdepth_ros.demo.demo", "run the ROS node on a generated sample and write its outputs"),
    "demo-model": ("textdepth_ros.demo.demo_model", "train the demo's model on generated rooms (make demo-model)"),
    "make-dataset": ("textdepth_ros.data.generate", "write a small synthetic NYU-layout dataset"),
    "train": ("textdepth_ros.train", "train on NYU Depth v2 (one GPU, many with torchrun, or CPU)"),
    "eval": ("textdepth_ros.eval", "evaluate a checkpoint or a folder of predictions (PixelFormer protocol)"),
    "make-bag": ("textdepth_ros.bags.make_bag", "write an RGB-D dataset into a rosbag2 (mcap or sqlite3)"),
    "bag-eval": ("textdepth_ros.bags.bag_eval", "replay a bag through the node (or the model) and score it"),
    "bag-dataset": ("textdepth_ros.bags.bag_dataset",
                    "turn RGB-D rosbags into a train / held-out dataset (NYU layout) for train and eval"),
    "import-pixelformer": ("textdepth_ros.import_pixelformer",
                           "convert a PixelFormer checkpoint (nyu.pth, kitti.pth) into a textdepth checkpoint"),
    "experiment": ("textdepth_ros.experiments.text_prior",
                   "train the ablation variants on generated rooms and measure what the scene text does (text-prior)"),
    "set-camera": ("textdepth_ros.set_camera", "show or set the training camera (focal length) a checkpoint records"),
    "export": ("textdepth_ros.serving.export", "export the network to ONNX (text embedding as an input) for onnxruntime/TensorRT"),
}


def build_parser(chosen=None) -> argparse.ArgumentParser:
    """All commands are listed; only `chosen` is imported and gets its real options."""
    parser = argparse.ArgumentParser(
        prog="textdepth",
        description="textdepth_ros: metric depth from RGB + a scene description.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Import only the chosen command's module (torch etc. load lazily).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"textdepth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"textdepth {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED


def entry() -> None:
    """The `textdepth` program: main()'s code as the exit status. After Ctrl-C / SIGTERM
    (130) it leaves directly: a KeyboardInterrupt that passed through code an extension
    ran with PyRun_String marks the interpreter, which then ends itself with SIGINT (exit
    -2) even though main() caught it. Every `with` block has unwound by then: staging
    folders and temporary files are already gone."""
    code = main()
    if code == INTERRUPTED:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(INTERRUPTED)
    sys.exit(code)


if __name__ == "__main__":
    entry()
