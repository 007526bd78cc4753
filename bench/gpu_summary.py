"""The table at the end of bench/gpu.sh: every number of its JSON files against the
GPU serving targets (docs/performance.md), printed and written to OUTDIR/summary.json.
A missing file (a step skipped or failed) shows as a missing row, never as a pass."""
import argparse
import csv
import json
from pathlib import Path

GRAPH_FPS, COMPILE_GRAPH_FPS, NODE_RATIO, NODE_FPS_120, RESTART_SHARE = 100.0, 180.0, 1.10, 90.0, 0.5


def load(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return {}


def rows_for_model(data: dict, rows: list, run: str = "model") -> None:
    for mode, r in data.get("results", {}).items():
        if "fps" not in r:
            why = r.get("failed") or ("skipped: " + r.get("skipped", "")) if r else "no result"
            rows.append((f"{run} {mode}", why[:70], "-", None))
            continue
        target, ok = "-", None
        if mode == "graph_fp16":
            target, ok = f">= {GRAPH_FPS:g} FPS", r["fps"] >= GRAPH_FPS
        elif mode == "compile_graph_fp16":
            target, ok = f">= {COMPILE_GRAPH_FPS:g} FPS", r["fps"] >= COMPILE_GRAPH_FPS
        rows.append((f"{run} {mode}: FPS (forward ms)", f"{r['fps']:.1f} ({r['median_ms']:.2f} ms)", target, ok))
        if "max_rel_diff_vs_eager" in r:
            rows.append((f"{run} {mode}: max rel. depth diff vs eager", f"{r['max_rel_diff_vs_eager']:.2e}", "-", None))
        for key, what in (("ops_per_forward", "per forward"), ("ops_per_replay", "per graph replay")):
            if r.get(key):
                rows.append((f"{run} {mode}: {what}", ", ".join(f"{k} {v}" for k, v in r[key].items()), "-", None))


def rows_for_node(label: str, data: dict, rows: list, bare_target: float) -> None:
    if not data:
        rows.append((f"node {label}", "no result", "-", None))
        return
    bare_fps = 1000.0 / data["bare_forward"]["median_ms"]
    rows.append((f"node bench {label}: bare forward FPS (the node's own mode, fp16)", f"{bare_fps:.1f}",
                 f">= {bare_target:g}", bare_fps >= bare_target))
    rows.append((f"node {label}: e2e / bare forward (bare {data['bare_forward']['median_ms']:.2f} ms)",
                 f"{data['overhead_ratio']:.3f}", f"<= {NODE_RATIO:g}", data["overhead_ratio"] <= NODE_RATIO))
    for s in data.get("streams", []):
        rate = s["rate_hz"]
        target, ok = (f">= {NODE_FPS_120:g}", s["fps"] >= NODE_FPS_120) if rate >= 120 else ("-", None)
        rows.append((f"node {label}: FPS under {rate:g} Hz (sent/published/dropped {s['sent']}/{s['node_published']}"
                     f"/{s['node_dropped']})", f"{s['fps']:.1f}", target, ok))
        rows.append((f"node {label}: max output age / 2 x forward at {rate:g} Hz", f"{s['max_age_over_two_forward']:.2f}",
                     "<= 1", s["max_age_over_two_forward"] <= 1.0))
        # wall > GPU: the worker waited (GIL, host copies); GPU > bare: the device itself slowed
        rows.append((f"node {label}: its forward at {rate:g} Hz, wall / GPU clock (ms; bare "
                     f"{data['bare_forward']['median_ms']:.1f})",
                     f"{s.get('node_forward_ms_mean', '?')} / {s.get('node_forward_gpu_ms_mean', '?')}", "-", None))
    if "max_rel_diff_vs_eager" in data:
        rows.append((f"node bench {label}: bare forward, max rel. depth diff vs eager", f"{data['max_rel_diff_vs_eager']:.2e}",
                     "-", None))
    if data.get("ops_per_forward"):
        rows.append((f"node bench {label}: per forward (uncaptured)",
                     ", ".join(f"{k} {v}" for k, v in data["ops_per_forward"].items()), "-", None))
    if "node_restart_ready_s" in data:
        first, again = data["node_ready_s"], data["node_restart_ready_s"]
        rows.append((f"node {label}: ready after first start / restart (s)", f"{first:.1f} / {again:.1f}",
                     f"restart <= {RESTART_SHARE:g} x first", again <= RESTART_SHARE * first))


def rows_for_comparison(data: dict, what: str, rows: list) -> None:
    """profiling.compare_estimators' result (new way first, old second): same depth, casts,
    kernels, time ratio."""
    if not data:
        return
    c = data["counts"]
    new, old = list(c)[:2]
    rows.append((f"{what}: same depth; casts; kernels per forward",
                 f"{data['identical']}; {c[new]['casts']} vs {c[old]['casts']}; "
                 f"{c[new].get('gpu_kernels', '-')} vs {c[old].get('gpu_kernels', '-')}", "True", data["identical"]))
    mode = "CUDA graph replays" if data.get("cuda_graphs") else "eager"
    rows.append((f"{what}: predict time ratio ({mode})", f"{data['time_ratio']:.2f}", "-", None))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", help="bench/gpu.sh's output folder")
    folder = Path(parser.parse_args(argv).folder)
    rows = []
    rows_for_model(load(folder, "model_paper.json"), rows)
    rows_for_model(load(folder, "model_paper_compile.json"), rows, run="model (compile run)")
    rows_for_node("CUDA graphs", load(folder, "node_graph.json"), rows, GRAPH_FPS)
    rows_for_node("CUDA graphs, no cloud, tuned client", load(folder, "node_graph_lean.json"), rows, GRAPH_FPS)
    rows_for_node("compile + graphs", load(folder, "node_compile.json"), rows, COMPILE_GRAPH_FPS)
    for file, what in (("half.json", "half weights cast once vs per forward"),
                       ("attention_bias.json", "attention bias kept vs per forward")):
        rows_for_comparison(load(folder, file), what, rows)
    gil = load(folder, "gil.json")  # gil_bench --compare-executors
    if gil:
        table = gil["table"]
        for kind, executor in gil["executors"].items():
            rows.append((f"node plumbing, GIL-free {gil['forward_ms']:g} ms forward, {executor}: FPS at "
                         f"{gil['rate_hz']:g} Hz (forward p90, max age ms)",
                         f"{table['fps'][kind]:.1f} ({table['forward_p90_ms'][kind]:.2f}, "
                         f"{table['age_max_ms'][kind]:.1f})", "-", None))
    steps = []
    if (folder / "steps.tsv").is_file():
        with open(folder / "steps.tsv") as f:
            steps = list(csv.DictReader(f, delimiter="\t"))
    for s in steps:
        if s["step"] != "summary":
            rows.append((f"step {s['step']}: exit code (seconds)", f"{s['exit']} ({s['seconds']} s)", "0",
                         s["exit"] == "0"))
    name = load(folder, "model_paper.json").get("name", "?")
    print(f"GPU serving summary: {name}")
    width = max(len(r[0]) for r in rows)
    for what, value, target, ok in rows:
        verdict = "" if ok is None else ("MEETS" if ok else "MISSES")
        print(f"{what:<{width}}  {value:>24}  {target:>24}  {verdict}")
    (folder / "summary.json").write_text(json.dumps(
        {"name": name, "rows": [{"what": w, "value": v, "target": t, "meets": ok} for w, v, t, ok in rows]}, indent=2))
    return rows


if __name__ == "__main__":
    main()
