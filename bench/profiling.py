"""Operator and kernel counts of one forward (torch.profiler), for model_speed.py and
node_bench.py: how many operators Python dispatches, how many GPU kernels run, how many
launch calls the CPU makes (one graph launch per frame with CUDA graphs)."""
import torch

LAUNCH_CALLS = ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchKernelExC", "cudaGraphLaunch")


def count_ops(forward, device) -> dict:
    """Operators dispatched (aten::*, nested ones included), dtype casts among them (each
    a kernel on a GPU), GPU kernels, and launch calls (kernel launches + graph launches)
    of one forward, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        forward()
    events = list(prof.events())
    counts = {"aten_ops": sum(1 for e in events if e.name.startswith("aten::")),
              "casts": sum(1 for e in events if e.name == "aten::_to_copy")}
    if device.type == "cuda":
        on_device = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
        attached = sum(len(getattr(e, "kernels", []) or []) for e in events)
        counts["gpu_kernels"] = max(on_device, attached)
        counts["launch_calls"] = sum(1 for e in events if e.name in LAUNCH_CALLS)
        counts["graph_launches"] = sum(1 for e in events if e.name == "cudaGraphLaunch")
    return counts


@torch.inference_mode()
def uncaptured_forward(estimator, rgb, text, sync):
    """The program a graph mode captures, run as it is (eager, or compiled): the kernels
    a replay launches, visible to the profiler one by one."""
    image = torch.from_numpy(rgb).to(estimator.device)
    embedding = estimator.model.encode_text([text]) if estimator.uses_text else None
    estimator._program(image, embedding)
    if sync:
        sync()


def compare_estimators(variants: dict, rgb, text: str, repeats: int) -> dict:
    """The same frame through each estimator of `variants` (name -> estimator; the first is
    the new way, the second the old): whether their depths are bit-identical, operators /
    casts / kernels per forward of the program a CUDA graph would replay, and the predict
    time, the variants alternated call by call (this machine is shared and noisy)."""
    import numpy as np

    from common import dist

    (new, new_est), (old, _) = list(variants.items())[:2]
    sync = torch.cuda.synchronize if new_est.device.type == "cuda" else None
    depth = {name: est.predict(rgb, text).depth for name, est in variants.items()}  # also the warm-up / capture
    counts = {name: count_ops(lambda: uncaptured_forward(est, rgb, text, sync), est.device)
              for name, est in variants.items()}
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, est in variants.items():
            times[name].append(est.predict(rgb, text).forward_ms / 1000.0)
    forward = {name: dist(t) for name, t in times.items()}
    return {"describe": new_est.describe(), "cuda_graphs": new_est.uses_cuda_graphs,
            "identical": bool(np.array_equal(depth[new], depth[old])),
            "counts": counts, "forward": forward,
            "time_ratio": forward[new]["median_ms"] / forward[old]["median_ms"]}


def report_comparison(tag: str, result: dict, headline: str, json_path=None) -> dict:
    """Print compare_estimators' result (each variant's counts and time, then whether the
    depth is identical and the time ratio) under `[tag]`, and write it to `json_path`."""
    import json
    from pathlib import Path

    from common import fmt

    new, old = list(result["counts"])[:2]
    print(f"[{tag}] {headline}")
    for name, counts in result["counts"].items():
        print(f"[{tag}] {name:17s} per forward {counts}; predict {fmt(result['forward'][name])}")
    print(f"[{tag}] depth identical: {result['identical']}; operators per forward "
          f"{result['counts'][old]['aten_ops']} -> {result['counts'][new]['aten_ops']}, casts "
          f"{result['counts'][old]['casts']} -> {result['counts'][new]['casts']}; time {new} / {old} "
          f"{result['time_ratio']:.2f}")
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2))
    return result
