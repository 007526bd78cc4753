"""Is a loaded last_state.pt what this run's own `save_last` would have written? Checked
before any part of it is used; the first problem is one line.

The weights' hash and the step tie the state to its weights file, but not its content:
an edited or foreign state (a wrong type, a missing or extra entry, an optimizer moment
shaped for another parameter, an RNG state torch or Python refuse) used to end in a
traceback, or worse, in a resumed run that failed steps later. Each part is compared
with what this run's objects give now (optimizer, scheduler and scaler `state_dict()`,
`rng_states()`): the same keys, the same types, tensors of the same dtype and shape,
each optimizer moment shaped like its parameter, progress counters that are
non-negative integers, and an RNG state that the generators accept.
"""
import random

import numpy as np
import torch

from textdepth_ros.training.rng_state import rng_states, set_rng_states

PROGRESS_KEYS = {"step", "epoch", "batch", "best"}


def state_problem(state, optimizer, scheduler, scaler):
    """None if `state` can be restored into these objects, else what is wrong with it."""
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a training state"
    expected = {"optimizer", "scheduler", "scaler", "progress", "rng", "weights_sha256"}
    problem = _keys(expected, state, "the state")
    checks = (
        lambda: problem,
        lambda: _optimizer_problem(state["optimizer"], optimizer),
        lambda: _compare(scheduler.state_dict(), state["scheduler"], "scheduler"),
        lambda: _compare(scaler.state_dict(), state["scaler"], "scaler"),
        lambda: _progress_problem(state["progress"]),
        lambda: _rng_problem(state["rng"], rng_states()),
    )
    for check in checks:
        problem = check()
        if problem:
            return problem
    return None


def _keys(expected, found: dict, where: str):
    missing, extra = sorted(set(expected) - set(found), key=str), sorted(set(found) - set(expected), key=str)
    if missing:
        return f"lacks {where}['{missing[0]}']"
    if extra:
        return f"has an unexpected entry {where}['{extra[0]}']"
    return None


def _trained_count_problem(saved_groups, optimizer):
    """Another number of trained tensors than this run's: a changed train.freeze, said as such."""
    try:
        saved = sum(len(group["params"]) for group in saved_groups)
    except (TypeError, KeyError):
        return None  # not the shape of param_groups: _compare names what is wrong
    now = sum(len(group["params"]) for group in optimizer.param_groups)
    if saved == now:
        return None
    return f"trains {saved} parameter tensors, this run {now} (was train.freeze changed? resume with the run's own setting)"


def _compare(template, value, where: str):
    """The first place where `value` differs in structure from `template`, or None."""
    if isinstance(template, dict):
        if not isinstance(value, dict):
            return f"has {where} as a {type(value).__name__}, expected a dict"
        problem = _keys(template, value, where)
        if problem:
            return problem
        for key in template:
            problem = _compare(template[key], value[key], f"{where}['{key}']")
            if problem:
                return problem
        return None
    if isinstance(template, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(template):
            return f"has {where} as {_describe(value)}, expected a list of {len(template)}"
        for i, (t, v) in enumerate(zip(template, value)):
            problem = _compare(t, v, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(template, torch.Tensor):
        if not isinstance(value, torch.Tensor) or value.dtype != template.dtype or value.shape != template.shape:
            return f"has {where} as {_describe(value)}, expected {_describe(template)}"
        return None
    if template is None:  # optional settings (foreach, fused, a scheduler's lambda)
        return None if value is None or isinstance(value, bool) else f"has {where} as {_describe(value)}"
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(type(template), (type(template),))
    if not isinstance(value, kinds) or (isinstance(value, bool) and not isinstance(template, bool)):
        return f"has {where} as {_describe(value)}, expected a {type(template).__name__}"
    return None


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__} ({str(value)[:40]})"


def _optimizer_problem(saved, optimizer):
    template = optimizer.state_dict()
    if not isinstance(saved, dict):
        return f"has optimizer as a {type(saved).__name__}, expected a dict"
    problem = _keys(template, saved, "optimizer") or _trained_count_problem(saved["param_groups"], optimizer)
    problem = problem or _compare(template["param_groups"], saved["param_groups"], "optimizer['param_groups']")
    if problem:
        return problem
    for i, (want, got) in enumerate(zip(template["param_groups"], saved["param_groups"])):
        if list(got["params"]) != list(want["params"]):
            return f"has optimizer['param_groups'][{i}]['params'] for other parameters than this model's"
    if not isinstance(saved["state"], dict):
        return f"has optimizer['state'] as a {type(saved['state']).__name__}, expected a dict"
    params = dict(enumerate(p for group in optimizer.param_groups for p in group["params"]))
    keys = _moment_keys(optimizer)
    for index, moments in saved["state"].items():
        where = f"optimizer['state'][{index!r}]"
        if index not in params:
            return f"has {where} for a parameter this model does not have"
        if not isinstance(moments, dict):
            return f"has {where} as a {type(moments).__name__}, expected a dict"
        problem = _keys(keys, moments, where) if keys is not None else None
        if problem:
            return problem
        for name, value in moments.items():
            shape = () if name == "step" else tuple(params[index].shape)
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() or tuple(value.shape) != shape:
                return (f"has {where}['{name}'] as {_describe(value)}, expected a float tensor of shape {shape} "
                        "(the parameter's)")
    return None


def _moment_keys(optimizer):
    """The per-parameter state keys this optimizer keeps (one step on a one-value probe)."""
    try:
        settings = {k: v for k, v in optimizer.param_groups[0].items() if k not in ("params", "initial_lr")}
        probe = torch.nn.Parameter(torch.zeros(1))
        twin = type(optimizer)([probe], **settings)
        probe.grad = torch.zeros(1)
        twin.step()
        return set(twin.state[probe])
    except Exception:  # noqa: BLE001 - an optimizer we cannot probe: shapes are still checked
        return None


def _progress_problem(progress):
    if not isinstance(progress, dict):
        return f"has progress as a {type(progress).__name__}, expected a dict"
    problem = _keys(PROGRESS_KEYS, progress, "progress")
    if problem:
        return problem
    for key in ("step", "epoch", "batch"):
        value = progress[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"has progress['{key}'] = {value!r}, expected a non-negative integer"
    if not isinstance(progress["best"], dict):
        return f"has progress['best'] as a {type(progress['best']).__name__}, expected a dict"
    for metric, best in progress["best"].items():
        problem = _compare({"value": 0.0, "step": 0}, best, f"progress['best'][{metric!r}]")
        if problem:
            return problem
    return None


def _rng_problem(saved, template):
    if not isinstance(saved, dict):
        return f"has rng as a {type(saved).__name__}, expected a dict"
    cuda = saved.get("cuda")  # as many generators as the saving machine had GPUs
    if not isinstance(cuda, (list, tuple)) or not all(isinstance(s, torch.Tensor) and s.dtype == torch.uint8
                                                      for s in cuda):
        return "has rng['cuda'] that is not a list of CUDA generator states"
    problem = _compare(dict(template, cuda=None), dict(saved, cuda=None), "rng")
    if problem:
        return problem
    python = saved["python"]
    if len(python[0]) != 625 or not all(isinstance(v, int) for v in python[0]):
        return "has rng['python'] that is not a Python random state"
    return _try_rng(saved)


def _try_rng(saved):
    """Whether torch, numpy and Python accept these states (each generator is restored after)."""
    torch_state, numpy_state, python_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        set_rng_states(dict(saved, cuda=[]))
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        return f"has an RNG state the generators refuse ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return None
