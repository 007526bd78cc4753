"""`train.freeze: [backbone]` against training everything: time per optimizer step and
peak memory, the paper config (Swin-L + ViT-L/14 text, full variant, random weights) at a
small size on CPU, measured in one run.

Each setting trains in a fresh child process (peak RSS is per process and never goes
down), one after the other: Adam, batch 2, SILog loss against a fixed depth map, the
text embedding computed once as `train` does (text_table.py). Step times are the median of
--steps steps after one untimed step (which allocates Adam's state). Peak RSS covers the
whole child (weights ~1.6 GB fp32 included); 'training' is that peak minus the RSS once
the model is built, i.e. what the steps added (gradients, Adam state, activations).
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import common  # noqa: F401 - puts the checkout on sys.path

SETTINGS = {"everything": [], "frozen backbone": ["backbone"]}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(config: str, freeze_list, height: int, width: int, steps: int) -> dict:
    import torch

    from textdepth_ros.model import build_model
    from textdepth_ros.training.freeze import describe_trainable, freeze
    from textdepth_ros.training.loss import silog_loss

    torch.manual_seed(0)
    model = build_model(config, variant="full", pretrained=False)
    freeze(model, freeze_list)
    model.train()
    with torch.no_grad():
        text = model.encode_text(["a living room with a sofa", "a kitchen"])
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, height, width, generator=gen)
    gt = 1.0 + 4.0 * torch.rand(2, 1, height, width, generator=gen)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=4e-5)
    built = rss_mb()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        silog_loss(model(images, text_embedding=text)["depth"], gt).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step_s": statistics.median(times[1:]), "steps": times[1:], "peak_rss_mb": peak,
            "training_mb": peak - built, "trainable": describe_trainable(model),
            "threads": torch.get_num_threads()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="paper", help="model config (default %(default)s)")
    parser.add_argument("--height", type=int, default=128, help="image height (default %(default)s)")
    parser.add_argument("--width", type=int, default=160, help="image width (default %(default)s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (default %(default)s)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one setting
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.config, SETTINGS[args.child], args.height, args.width, args.steps)))
        return None

    results = {}
    for name in SETTINGS:
        cmd = [sys.executable, __file__, "--child", name, "--config", args.config, "--height", str(args.height),
               "--width", str(args.width), "--steps", str(args.steps)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        r = results[name]
        print(f"{name:>16}: {r['step_s']:.2f} s/step (steps {', '.join(f'{t:.2f}' for t in r['steps'])}), "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, training adds {r['training_mb']:.0f} MB; {r['trainable']}",
              flush=True)
    full, frozen = results["everything"], results["frozen backbone"]
    summary = {"config": args.config, "size": [args.height, args.width], "batch": 2, "device": "cpu",
               "threads": full["threads"], "results": results,
               "step_time_ratio": frozen["step_s"] / full["step_s"],
               "peak_rss_ratio": frozen["peak_rss_mb"] / full["peak_rss_mb"],
               "training_memory_ratio": frozen["training_mb"] / full["training_mb"]}
    print(f"frozen backbone / everything ({args.config}, {args.height}x{args.width}, batch 2, CPU, "
          f"{full['threads']} threads): step time {summary['step_time_ratio']:.2f}, "
          f"peak RSS {summary['peak_rss_ratio']:.2f}, memory the steps add {summary['training_memory_ratio']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
