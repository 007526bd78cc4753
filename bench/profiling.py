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
