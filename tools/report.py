"""Turns lorafa's benchmark JSON into report.md, results.json and PNG charts.

Usage (normally through tools/report.sh, i.e. `bazel run //tools:report`):
    python3 report.py --optimizer_json=opt.json --training_json=train.json --out=DIR --device=cpu
    (--optimizer_json may be left out: the llm preset measures the training step only)
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

OPTIMIZERS = [
    ("lorafa_exact", "lorafa LoRA-FA (kExact)"),
    ("lorafa_peft_bf16", "lorafa LoRA-FA (kPeftBf16)"),
    ("lorafa_exact_skip_nonfinite", "lorafa kExact + skip_nonfinite"),
    ("hf_adamw_b_only", "HF-AdamW on B only"),
    ("hf_adamw_a_and_b", "HF-AdamW on A and B (LoRA)"),
    ("torch_adamw_a_and_b", "torch::optim::AdamW on A and B"),
    ("torch_fused_adamw_a_and_b", "torch fused AdamW on A and B"),
    ("torch_fused_adamw_b_only", "torch fused AdamW on B only"),
    ("projection_mm", "projection mm alone"),
    ("lorafa_projection", "lorafa's fused projection alone"),
    ("peft_lorafa", "PEFT LoraFAOptimizer (Python)"),
    ("python_torch_adamw", "torch.optim.AdamW on A and B (Python)"),
]


def parse_runs(document, aggregate="median"):
    """{(benchmark, args tuple): row} using the given aggregate when repetitions were run (a benchmark
    without that aggregate is left out)."""
    runs = {}
    for row in document.get("benchmarks", []):
        if row.get("run_type") == "aggregate" and row.get("aggregate_name") != aggregate:
            continue
        if row.get("run_type") != "aggregate" and aggregate != "median":
            continue
        name, *args = row["run_name"].split("/")
        key = (name, tuple(int(a.split(":")[1]) for a in args if not a.startswith("repeats:")))
        runs[key] = row
    return runs


def time_us(row):
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[row["time_unit"]]
    return row["real_time"] * scale


def mib(value):
    return value / (1 << 20)


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def percent(value):
    return "n/a" if value is None else f"{100 * value:.0f}%"


def verdict(holds):
    return "holds" if holds else "does not hold"


def optimizer_tables(runs, lines, derived, best_runs=None):
    shapes = sorted({args for (_, args) in runs})
    lines.append("## Optimizer step\n")
    lines.append("Median time per `step()` in µs (r, width × width layers, layer count); ratios measured in the same run, "
                 "whose repetitions of every case ran in random interleaved order (a slow spell of the machine falls "
                 "on both sides of a ratio alike).\n")
    lines.append("The anchor is what the fused step must beat: the projection's `mm` plus torch's fused AdamW on B, "
                 "run back to back. The roofline: moving the step's bytes (read g, m, v, B; write m, v, B) at the copy "
                 "bandwidth measured for that size takes one time, the projection's flops at the measured GEMM rate "
                 "(a 1024³ GEMM) another; a fused step overlaps the two, so its bound is the larger, and "
                 "'roofline reached' is that bound over lorafa's time. 'memory + GEMM' is their sum over lorafa's "
                 "time: above 100% where the kernel overlaps them.\n")
    header = ("| r | width | layers | " + " | ".join(label for _, label in OPTIMIZERS) +
              " | lorafa / anchor | lorafa / fused AdamW A+B | lorafa / fused AdamW B | PEFT / lorafa | roofline reached | memory + GEMM "
              "| fused projection / GEMM rate |")
    lines.append(header)
    lines.append("|" + "---|" * (header.count("|") - 1))
    derived["optimizer_step"] = []
    # Rates are compared best against best (see optimizer_step_benchmark.cc); the smoke preset has no
    # repetitions, hence no "min", and falls back to the single run.
    best = best_runs or runs
    gemm = best.get(("gemm_peak", (0, 0, 0)))
    gemm_flops_per_us = gemm["flops"] / time_us(gemm) if gemm else None
    derived["gemm_gflops"] = gemm_flops_per_us / 1e3 if gemm_flops_per_us else None
    for args in shapes:
        if args == (0, 0, 0):
            continue
        times = {name: time_us(runs[(name, args)]) for name, _ in OPTIMIZERS if (name, args) in runs}
        lorafa = times.get("lorafa_exact")
        both = times.get("hf_adamw_a_and_b")
        fused_ab = times.get("torch_fused_adamw_a_and_b")
        fused_b = times.get("torch_fused_adamw_b_only")
        mm = times.get("projection_mm")
        peft = times.get("peft_lorafa")
        copy = runs.get(("copy_bandwidth", args))
        lorafa_row = runs.get(("lorafa_exact", args))
        roofline = memory_us = gemm_us = None
        copy_bytes_per_us = copy["step_bytes"] / time_us(copy) if copy else None
        if lorafa_row and copy_bytes_per_us and gemm_flops_per_us:
            # A fused step overlaps its memory traffic with the projection's arithmetic: the bound is the
            # larger of the two times (their sum, also reported, is what running them one after the other costs).
            memory_us = lorafa_row["step_bytes"] / copy_bytes_per_us
            gemm_us = lorafa_row["projection_flops"] / gemm_flops_per_us
            roofline = max(memory_us, gemm_us)
        projection_row = best.get(("lorafa_projection", args))
        projection_gflops = (projection_row["projection_flops"] / time_us(projection_row) / 1e3
                             if projection_row else None)
        row = {
            "r": args[0], "width": args[1], "layers": args[2], "time_us": times,
            "projection_gflops": projection_gflops,
            "projection_over_gemm_peak": projection_gflops * 1e3 / gemm_flops_per_us
            if projection_gflops and gemm_flops_per_us else None,
            "lorafa_over_lora_adamw": lorafa / both if lorafa and both else None,
            "lorafa_over_anchor": lorafa / (mm + fused_b) if lorafa and mm and fused_b else None,
            "lorafa_over_fused_a_and_b": lorafa / fused_ab if lorafa and fused_ab else None,
            "lorafa_over_fused_b_only": lorafa / fused_b if lorafa and fused_b else None,
            "peft_speedup": peft / lorafa if lorafa and peft else None,
            "guard_cost": times["lorafa_exact_skip_nonfinite"] / lorafa
            if lorafa and "lorafa_exact_skip_nonfinite" in times else None,
            "roofline_us": roofline,
            "memory_plus_gemm_us": memory_us + gemm_us if roofline else None,
            "roofline_fraction": roofline / lorafa if roofline and lorafa else None,
            "copy_bandwidth_fraction": (lorafa_row["step_bytes"] / lorafa) / copy_bytes_per_us
            if lorafa_row and lorafa and copy_bytes_per_us else None,
        }
        derived["optimizer_step"].append(row)
        cells = [f"{times[name]:.0f}" if name in times else "–" for name, _ in OPTIMIZERS]
        fraction = "n/a" if row["roofline_fraction"] is None else f"{100 * row['roofline_fraction']:.0f}%"
        serial = "n/a" if row["memory_plus_gemm_us"] is None else f"{100 * row['memory_plus_gemm_us'] / lorafa:.0f}%"
        lines.append(f"| {args[0]} | {args[1]} | {args[2]} | " + " | ".join(cells) + f" | {fmt_ratio(row['lorafa_over_anchor'])} | "
                     f"{fmt_ratio(row['lorafa_over_fused_a_and_b'])} | {fmt_ratio(row['lorafa_over_fused_b_only'])} | "
                     f"{fmt_ratio(row['peft_speedup'])} | {fraction} | {serial} | {percent(row['projection_over_gemm_peak'])} |")
    if derived["gemm_gflops"]:
        lines.append(f"\nMeasured GEMM rate (1024³, float32, best of the repetitions): {derived['gemm_gflops']:.0f} GFLOP/s; "
                     "'fused projection / GEMM rate' sets the best of lorafa_projection's repetitions against it.")
    lines.append("")

    lines.append("### Optimizer state\n")
    lines.append("| r | width | layers | lorafa state (MiB) | AdamW on A and B state (MiB) | saved |")
    lines.append("|---|---|---|---|---|---|")
    savings = []
    for args in shapes:
        if args == (0, 0, 0) or ("lorafa_exact", args) not in runs or ("hf_adamw_a_and_b", args) not in runs:
            continue
        mine = runs[("lorafa_exact", args)]["state_bytes"]
        theirs = runs[("hf_adamw_a_and_b", args)]["state_bytes"]
        savings.append(1 - mine / theirs)
        lines.append(f"| {args[0]} | {args[1]} | {args[2]} | {mib(mine):.2f} | {mib(theirs):.2f} | {100 * (1 - mine / theirs):.1f}% |")
    lines.append("")
    derived["optimizer_state_saving"] = savings
    return shapes


# The training benchmark's two stacks: (name suffix, description). See training_step_benchmark.cc.
ARCHITECTURES = [
    ("", "small stack: single-head attention and a GELU MLP (4d), sequence 64"),
    ("_llama", "Llama-2-7B-shaped blocks: 32-head causal attention, SwiGLU MLP, batch 1"),
]


def training_tables(runs, lines, derived):
    lines.append("## Full training step (forward + backward + optimizer)\n")
    lines.append("LoRA on every projection; memory from the allocator (CPU: a counting wrapper around LibTorch's "
                 "allocator; CUDA: the caching allocator's statistics), analytic expectations beside it.\n")
    derived["training_step"] = []
    for suffix, description in ARCHITECTURES:
        fa_name, lora_name = "train_lorafa" + suffix, "train_lora_adamw" + suffix
        shapes = sorted({args for (name, args) in runs if name in (fa_name, lora_name)})
        if not shapes:
            continue
        lines.append(f"### {description[0].upper()}{description[1:]}\n")
        lines.append("| d | blocks | r | tokens | method | step (ms) | weights (MiB) | activations (MiB) | grads (MiB) | "
                     "expected grads | state (MiB) | expected state | peak (MiB) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for args in shapes:
            pair = {}
            for name, label in ((fa_name, "LoRA-FA (lorafa)"), (lora_name, "LoRA + AdamW")):
                row = runs.get((name, args))
                if not row:
                    continue
                pair[name] = row
                lines.append(
                    f"| {args[0]} | {args[1]} | {args[2]} | {args[3]} | {label} | {time_us(row) / 1e3:.1f} | "
                    f"{mib(row['weights_bytes']):.2f} | {mib(row['activation_bytes']):.2f} | {mib(row['grad_bytes']):.2f} | "
                    f"{mib(row['expected_grad_bytes']):.2f} | {mib(row['state_bytes']):.2f} | {mib(row['expected_state_bytes']):.2f} | "
                    f"{mib(row['peak_bytes']):.2f} |")
            if len(pair) == 2:
                fa, lora = pair[fa_name], pair[lora_name]
                weights = lora["weights_bytes"]  # the same tensors on both sides
                derived["training_step"].append({
                    "architecture": "llama" if suffix else "small", "d": args[0], "blocks": args[1], "r": args[2],
                    "tokens": args[3],
                    "time_ratio": time_us(fa) / time_us(lora),
                    "peak_saving": 1 - fa["peak_bytes"] / lora["peak_bytes"],
                    # What the optimizer and the backward decide: the peak above the frozen weights.
                    "peak_saving_above_weights": 1 - (fa["peak_bytes"] - weights) / (lora["peak_bytes"] - weights),
                    "activation_saving_bytes": lora["activation_bytes"] - fa["activation_bytes"],
                    "expected_activation_saving_bytes": lora["expected_extra_saved_bytes"],
                    "lorafa": fa, "lora_adamw": lora,
                })
        lines.append("")
    lines.append("| stack | d | blocks | r | tokens | LoRA-FA / LoRA+AdamW step time | peak memory saved | "
                 "peak saved above the frozen weights | activations freed by freezing A (measured) | "
                 "(expected if every projection input were freed) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for row in derived["training_step"]:
        lines.append(f"| {row['architecture']} | {row['d']} | {row['blocks']} | {row['r']} | {row['tokens']} | "
                     f"{row['time_ratio']:.2f}x | {100 * row['peak_saving']:.1f}% | "
                     f"{100 * row['peak_saving_above_weights']:.1f}% | {mib(row['activation_saving_bytes']):.2f} MiB | "
                     f"{mib(row['expected_activation_saving_bytes']):.2f} MiB |")
    lines.append("")


PYTHON_METHODS = [
    ("python_lorafa", "lorafa.LoraFAOptimizer"),
    ("python_lorafa_cpp_step", "its C++ step alone"),
    ("python_peft_lorafa", "PEFT LoraFAOptimizer"),
    ("python_torch_fused_adamw_a_and_b", "torch.optim.AdamW(fused=True) on A and B"),
]


def python_tables(document, lines, derived):
    """Step time from Python (benchmarks/python_step_benchmark.py), one row per shape."""
    rows = defaultdict(dict)
    for row in document.get("benchmarks", []):
        rows[(row["r"], row["width"], row["layers"])][row["name"]] = row["median_us"]
    lines.append("## From Python\n")
    threads = document.get("context", {}).get("threads", "?")
    lines.append(f"Median `step()` time in µs from Python ({threads} threads; each call timed by itself, the methods "
                 "in turns), the same layers for each; lorafa is the installed wheel. 'its C++ step alone' is the "
                 "same step with its lists planned once, timed call by call in turn with lorafa's Python `step()`: "
                 "'Python / C++' is what the Python front end costs.\n")
    lines.append("| r | width | layers | " + " | ".join(label for _, label in PYTHON_METHODS) +
                 " | Python / C++ | lorafa / fused AdamW A+B | PEFT / lorafa |")
    lines.append("|---|---|---|" + "---|" * (len(PYTHON_METHODS) + 3))
    derived["python_step"] = []
    for (r, width, layers), times in sorted(rows.items()):
        mine, cpp, peft, fused = (times.get(name) for name, _ in PYTHON_METHODS)
        ratio = mine / fused if mine and fused else None
        front_end = mine / cpp if mine and cpp else None
        speedup = peft / mine if mine and peft else None
        derived["python_step"].append({"r": r, "width": width, "layers": layers, "times_us": times,
                                       "lorafa_over_fused_a_and_b": ratio, "peft_speedup": speedup,
                                       "python_over_cpp": front_end})
        cells = " | ".join("n/a" if times.get(name) is None else f"{times[name]:.1f}" for name, _ in PYTHON_METHODS)
        lines.append(f"| {r} | {width} | {layers} | {cells} | {fmt_ratio(front_end)} | {fmt_ratio(ratio)} | "
                     f"{fmt_ratio(speedup)} |")
    lines.append("")


def claims(derived, lines, device):
    lines.append("## Verdicts\n")
    lines.append("| claim | measured | verdict |")
    lines.append("|---|---|---|")
    savings = derived.get("optimizer_state_saving", [])
    if savings:
        low, high = min(savings), max(savings)
        lines.append(f"| seed: ~50% optimizer-state saving on LoRA parameters | {100 * low:.1f}–{100 * high:.1f}% | "
                     f"{verdict(0.45 <= low and high <= 0.55)} |")
    training = derived.get("training_step", [])
    for architecture, where in (("small", "small stack"), ("llama", "Llama-2-7B-shaped blocks, where the claim was made")):
        rows = [row for row in training if row["architecture"] == architecture]
        if rows:
            peak = [row["peak_saving"] for row in rows]
            above = [row["peak_saving_above_weights"] for row in rows]
            lines.append(f"| seed: 30–40% total (peak) memory saving ({where}) | {100 * min(peak):.1f}–{100 * max(peak):.1f}% "
                         f"({100 * min(above):.1f}–{100 * max(above):.1f}% of the peak above the frozen weights) | "
                         f"{verdict(min(peak) >= 0.30)} |")
    # Times only from the small stack: the llm preset times a single instrumented step.
    timed = [row for row in training if row["architecture"] == "small"]
    if timed:
        peak = [row["peak_saving"] for row in timed]
        times = [row["time_ratio"] for row in timed]
        lines.append(f"| seed: < 5% compute overhead (training step vs LoRA + AdamW) | {min(times):.2f}–{max(times):.2f}x | "
                     f"{verdict(max(times) < 1.05)} |")
        lines.append(f"| goal: training step no slower than LoRA + AdamW, lower peak memory | time {max(times):.2f}x, "
                     f"peak saved ≥ {100 * min(peak):.1f}% | {verdict(max(times) <= 1.0 and min(peak) > 0)} |")
    steps = derived.get("optimizer_step", [])
    if device == "cpu":
        goal_rows = [row for row in steps if row["width"] == 1024 and row["layers"] == 32 and row["lorafa_over_anchor"]]
        if goal_rows:
            ratios = [row["lorafa_over_anchor"] for row in goal_rows]
            lines.append(f"| goal (CPU, width 1024, 32 layers, every r): lorafa ≤ 1.0× (projection mm + torch fused AdamW on B) | "
                         f"{min(ratios):.2f}–{max(ratios):.2f}x | {verdict(max(ratios) <= 1.0)} |")
        for row in goal_rows:
            lines.append(f"| goal (CPU, r = {row['r']}): lorafa ≤ 1.0× (projection mm + torch fused AdamW on B) | "
                         f"{row['lorafa_over_anchor']:.2f}x | {verdict(row['lorafa_over_anchor'] <= 1.0)} |")
        gemm_bound = [row for row in goal_rows if row["r"] >= 32 and row["projection_over_gemm_peak"]]
        for row in gemm_bound:
            lines.append(f"| goal (CPU, r = {row['r']} ≥ 32): the fused projection at ≥ 75% of the GEMM rate "
                         f"({derived['gemm_gflops']:.0f} GFLOP/s) | {row['projection_gflops']:.0f} GFLOP/s, "
                         f"{percent(row['projection_over_gemm_peak'])} | {verdict(row['projection_over_gemm_peak'] >= 0.75)} |")
        small = [row for row in goal_rows if row["r"] == 8 and row["lorafa_over_fused_b_only"] and row["lorafa_over_fused_a_and_b"]]
        for row in small:
            holds = row["lorafa_over_fused_b_only"] <= 1.25 and row["lorafa_over_fused_a_and_b"] <= 0.7
            lines.append(f"| goal (CPU, r = 8): ≤ 1.25× torch fused AdamW on B and ≤ 0.7× on A and B | "
                         f"{row['lorafa_over_fused_b_only']:.2f}x and {row['lorafa_over_fused_a_and_b']:.2f}x | {verdict(holds)} |")
        fractions = [row["roofline_fraction"] for row in goal_rows if row["roofline_fraction"]]
        if fractions:
            lines.append(f"| roofline reached (CPU, width 1024, 32 layers) | {100 * min(fractions):.0f}–{100 * max(fractions):.0f}% | "
                         "measured, no goal |")
    else:
        gpu_rows = [row for row in steps if row["width"] == 4096 and row["layers"] == 224]
        for row in gpu_rows:
            if row["r"] > 64 or not row["lorafa_over_fused_a_and_b"]:
                continue
            bandwidth = row["copy_bandwidth_fraction"] or 0.0
            holds = row["lorafa_over_fused_a_and_b"] <= 0.55 and bandwidth >= 0.70
            lines.append(f"| goal (GPU, width 4096, 224 pairs, r = {row['r']}): ≤ 0.55× torch fused AdamW on A and B, "
                         f"≥ 70% of copy bandwidth | {row['lorafa_over_fused_a_and_b']:.2f}x, {100 * bandwidth:.0f}% | {verdict(holds)} |")
    guard = [row["guard_cost"] for row in steps if row.get("guard_cost") and row["layers"] >= 32]
    if guard:
        lines.append(f"| cost of skip_nonfinite (step time with the guard / without, 32-layer cases) | "
                     f"{min(guard):.2f}–{max(guard):.2f}x | measured, no goal |")
    below = [row["lorafa_over_lora_adamw"] for row in steps if row["lorafa_over_lora_adamw"]]
    if below:
        lines.append(f"| goal: lorafa step well below HF-AdamW on A and B | {min(below):.2f}–{max(below):.2f}x | "
                     f"{verdict(max(below) < 1.0)} |")
    front_end = [row for row in derived.get("python_step", []) if row["python_over_cpp"] and row["layers"] >= 32]
    if front_end:
        costs = [row["python_over_cpp"] for row in front_end]
        lines.append(f"| goal: Python step() ≤ 1.15× its C++ step ({device}, 32 layers, every r) | "
                     f"{min(costs):.2f}–{max(costs):.2f}x | {verdict(max(costs) <= 1.15)} |")
    python_rows = [row for row in derived.get("python_step", []) if row["peft_speedup"] and row["layers"] >= 32]
    if python_rows:
        speedups = [row["peft_speedup"] for row in python_rows]
        lines.append(f"| goal: lorafa from Python ≥ 5× faster than PEFT ({device}, 32-layer cases) | "
                     f"{min(speedups):.1f}–{max(speedups):.1f}x | {verdict(min(speedups) >= 5.0)} |")
    speedups = [row["peft_speedup"] for row in steps if row["peft_speedup"] and row["layers"] >= 32]
    if speedups:
        lines.append(f"| goal: lorafa ≥ 5× faster than PEFT ({device}, 32-layer cases) | {min(speedups):.1f}–{max(speedups):.1f}x | "
                     f"{verdict(min(speedups) >= 5.0)} |")
    lines.append("")


def charts(optimizer_runs, derived, out):
    written = []
    steps = derived.get("optimizer_step", [])
    groups = defaultdict(list)
    for row in steps:
        groups[(row["width"], row["layers"])].append(row)
    if steps:
        fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
        for axis, ((width, layers), rows) in zip(axes[0], sorted(groups.items())):
            rows.sort(key=lambda row: row["r"])
            for name, label in OPTIMIZERS:
                if name in ("lorafa_exact", "torch_fused_adamw_b_only", "torch_fused_adamw_a_and_b", "projection_mm", "peft_lorafa"):
                    points = [(row["r"], row["time_us"][name]) for row in rows if name in row["time_us"]]
                    if points:
                        axis.plot(*zip(*points), marker="o", label=label)
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xlabel("rank r")
            axis.set_ylabel("µs per step")
            axis.set_title(f"width {width}, {layers} layers")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "step_time_vs_rank.png"), dpi=110)
        plt.close(fig)
        written.append("step_time_vs_rank.png")

        fig, axis = plt.subplots(figsize=(6, 4))
        for (width, layers), rows in sorted(groups.items()):
            points = [(row["r"], row["peft_speedup"]) for row in sorted(rows, key=lambda row: row["r"]) if row["peft_speedup"]]
            if points:
                axis.plot(*zip(*points), marker="o", label=f"width {width}, {layers} layers")
        axis.axhline(5.0, color="grey", linestyle="--", label="goal 5×")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("rank r")
        axis.set_ylabel("PEFT time / lorafa time")
        axis.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "speedup_vs_peft.png"), dpi=110)
        plt.close(fig)
        written.append("speedup_vs_peft.png")

    training = derived.get("training_step", [])
    if training:
        fig, axis = plt.subplots(figsize=(1 + 2.5 * len(training), 4))
        parts = [("weights_bytes", "weights"), ("activation_bytes", "activations"), ("grad_bytes", "gradients"),
                 ("state_bytes", "optimizer state")]
        labels, bottoms = [], []
        bars = []
        for row in training:
            for key in ("lora_adamw", "lorafa"):
                labels.append(f"{'LoRA+AdamW' if key == 'lora_adamw' else 'LoRA-FA'}\nd={row['d']} r={row['r']}\n"
                              f"{row['blocks']} blocks, {row['tokens']} tokens")
                bars.append(row[key])
        bottoms = [0.0] * len(bars)
        for key, label in parts:
            values = [mib(bar[key]) for bar in bars]
            axis.bar(range(len(bars)), values, bottom=bottoms, label=label)
            bottoms = [b + v for b, v in zip(bottoms, values)]
        axis.scatter(range(len(bars)), [mib(bar["peak_bytes"]) for bar in bars], color="black", marker="_", s=400,
                     label="peak", zorder=3)
        axis.set_xticks(range(len(bars)))
        axis.set_xticklabels(labels, fontsize=7)
        axis.set_ylabel("MiB")
        axis.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "memory_breakdown.png"), dpi=110)
        plt.close(fig)
        written.append("memory_breakdown.png")
    return written


def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def mkl_instruction_set():
    """The instruction set MKL runs its kernels with here, as MKL_VERBOSE reports it for one GEMM (the
    environment, MKL_ENABLE_INSTRUCTIONS included, is this process's, which the benchmarks ran under)."""
    probe = "import torch; torch.ones(8, 8) @ torch.ones(8, 8)"
    try:
        output = subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, MKL_VERBOSE="1"),
                                capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    banner = next((line for line in output.splitlines() if "architecture" in line), "")
    found = re.search(r"\(Intel\(R\) (AVX[^)]*)\)", banner) or re.search(r"architecture (.*?)(,|$)", banner)
    return found.group(1) if found else "unknown (no MKL_VERBOSE banner)"


def machine(optimizer_doc):
    """What the numbers were measured on: the first thing to compare between two reports."""
    import torch  # noqa: PLC0415

    context = optimizer_doc.get("context", {})
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "aten_cpu_capability": context.get("aten_cpu_capability", torch.backends.cpu.get_cpu_capability()),
        "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY", "(not set)"),
        "mkl_instruction_set": mkl_instruction_set(),
        "mkl_enable_instructions_env": os.environ.get("MKL_ENABLE_INSTRUCTIONS", "(not set)"),
        "torch_threads": int(context.get("torch_threads", torch.get_num_threads())),
    }


def machine_lines(optimizer_doc, device, facts):
    context = optimizer_doc.get("context", {})
    import peft  # noqa: PLC0415 - versions of the environment that produced the numbers
    import torch  # noqa: PLC0415

    lines = [
        "## Machine\n",
        f"- host: {context.get('host_name', platform.node())}, {platform.platform()}",
        f"- CPU: {facts['cpu']}, {facts['cores']} cores at {context.get('mhz_per_cpu', '?')} MHz",
        f"- instruction sets: ATen (and lorafa's CPU kernel) {facts['aten_cpu_capability']} "
        f"(ATEN_CPU_CAPABILITY {facts['aten_cpu_capability_env']}); MKL {facts['mkl_instruction_set']} "
        f"(MKL_ENABLE_INSTRUCTIONS {facts['mkl_enable_instructions_env']})",
        f"- threads: {facts['torch_threads']} for every C++ and Python row",
        f"- device: {device}" + (f" ({torch.cuda.get_device_name(0)})" if device == "cuda" and torch.cuda.is_available() else ""),
        f"- torch {torch.__version__} (LibTorch from the same wheel), peft {peft.__version__}",
        f"- Google Benchmark library build: {context.get('library_build_type', '?')} (Debian's package; "
        "its own overhead is per iteration, not per operation)",
        "",
    ]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--optimizer_json")
    parser.add_argument("--training_json", required=True)
    parser.add_argument("--python_json", help="benchmarks/python_step_benchmark.py's output, if it ran")
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="quick")
    args = parser.parse_args()

    optimizer_doc = {"benchmarks": []}
    if args.optimizer_json:
        with open(args.optimizer_json) as f:
            optimizer_doc = json.load(f)
    with open(args.training_json) as f:
        training_doc = json.load(f)
    optimizer_runs, training_runs = parse_runs(optimizer_doc), parse_runs(training_doc)

    derived = {}
    lines = [f"# lorafa benchmark report ({args.preset} preset, {args.device})\n"]
    facts = machine(optimizer_doc if args.optimizer_json else training_doc)
    lines += machine_lines(optimizer_doc if args.optimizer_json else training_doc, args.device, facts)
    body = []
    if optimizer_runs:
        optimizer_tables(optimizer_runs, body, derived, parse_runs(optimizer_doc, "min"))
    training_tables(training_runs, body, derived)
    python_doc = None
    if args.python_json:
        with open(args.python_json) as f:
            python_doc = json.load(f)
        python_tables(python_doc, body, derived)
    claims(derived, lines, args.device)
    lines += body
    written = charts(optimizer_runs, derived, args.out)
    if written:
        lines.append("## Charts\n")
        lines += [f"![{name}]({name})" for name in written]
    lines.append("\nAbsolute times are comparable only within one run; ratios are the figures to compare.\n")

    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": facts, "optimizer_step": optimizer_doc, "training_step": training_doc, "python_step": python_doc,
                   "derived": derived}, f, indent=1)
    print(f"report: wrote {args.out}/report.md, results.json and {len(written)} charts")


if __name__ == "__main__":
    main()
