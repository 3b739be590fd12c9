"""Optimizer step time from Python: lorafa.LoraFAOptimizer against PEFT's LoraFAOptimizer and
torch.optim.AdamW(fused=True) on A and B (what a LoRA user already has), over the same LoRA layers.

    python3 python_step_benchmark.py --preset=quick --device=cpu --out=python_step.json

Timing runs with torch's own thread count, the one a training script gets, and the JSON records it.
The methods of one shape are timed in turns, a block of steps each, round after round, so that a noisy
machine's slow spells fall on all of them alike and their ratios hold. Each row is the median time of
one `step()` (CUDA synchronised). "python_lorafa_cpp_step" is lorafa's C++ step
alone on the same layers, its lists planned once: Python's step() over it is what the Python front
end costs. The report (tools/report.py) turns the JSON into a table.
"""

import argparse
import functools
import json
import platform
import statistics
import time

import peft
import peft.optimizers.lorafa as peft_lorafa
import torch

import lorafa

# r values, widths, layer counts — the optimizer benchmark's sweeps at the same names.
SWEEPS = {
    "smoke": ([4], [64], [2]),
    "quick": ([8, 16, 32, 64], [1024], [32]),
    "full": ([8, 16, 32, 64, 128, 256], [1024, 4096], [1, 32]),
}
LR = 1e-4


def make_layers(r, width, layers, device):
    """(A, B) per layer with a gradient on B (and on A, for AdamW on A and B), seeded."""
    generator = torch.Generator().manual_seed(0)
    result = []
    for _ in range(layers):
        A = torch.randn(r, width, generator=generator).to(device)
        B = (0.01 * torch.randn(width, r, generator=generator)).to(device).requires_grad_()
        B.grad = torch.randn(width, r, generator=generator).to(device)
        A.grad = torch.randn(r, width, generator=generator).to(device)
        result.append((A, B))
    return result


def lorafa_optimizer(layers):
    pairs = [(f"layers.{i}.default", A, B, 2.0) for i, (A, B) in enumerate(layers)]
    return lorafa.LoraFAOptimizer([B for _, B in layers], lr=LR, lora_pairs=pairs)


class _CppStepOnly:
    """The C++ step that `optimizer.step()` runs, on the same layers and state: a planner of its own
    (the optimizer's lets the gradients go after each step) plans the lists once and runs them again
    and again. Python's step() over it is what the Python front end costs."""

    def __init__(self, optimizer):
        planner = lorafa.optimizer._new_planner(optimizer.lora_pairs, optimizer._others)
        planner.prepare(optimizer.param_groups, optimizer.state)
        self.step = functools.partial(planner.run, None, True)  # C-level: adds no Python frame


def peft_optimizer(layers):
    # create_lorafa_optimizer's group layout: every parameter, its name and its layer's scaling.
    params, names, scalings = [], [], []
    for i, (A, B) in enumerate(layers):
        params += [A.requires_grad_(False), B]
        names += [f"layers.{i}.lora_A.default.weight", f"layers.{i}.lora_B.default.weight"]
        scalings += [2.0, 2.0]
    group = {"params": params, "names": names, "scaling_factors": scalings}
    return peft_lorafa.LoraFAOptimizer([group], lr=LR)


def fused_adamw_a_and_b(layers):
    tensors = [t.detach().clone().requires_grad_() for A, B in layers for t in (A, B)]
    for t, source in zip(tensors, [t for A, B in layers for t in (A, B)]):
        t.grad = source.grad.clone()
    return torch.optim.AdamW(tensors, lr=LR, fused=True)


METHODS = [
    ("python_lorafa", lorafa_optimizer),
    ("python_peft_lorafa", peft_optimizer),
    ("python_torch_fused_adamw_a_and_b", fused_adamw_a_and_b),
]
def time_in_turns(turns, device, min_run_time):
    """The median time of one call of each step in `turns`, a list of lists of steps. The turns take
    blocks of about 10 ms, and at least 10 calls (the first after another turn meet cold caches), in
    rotation, round after round; within a turn the steps alternate call by call, so that steps compared
    with each other (Python's step and its C++ step) meet the same cache and the same machine. Each call is timed by itself (CUDA synchronised). Returns {step: median}, the rounds."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = {step: [] for turn in turns for step in turn}

    def run_turn(turn, calls):
        for step in turn:  # untimed: the turn before left the caches to another method
            step()
        for _ in range(calls):
            for step in turn:
                sync()
                start = time.perf_counter()
                step()
                sync()
                times[step].append(time.perf_counter() - start)

    calls = []
    for turn in turns:
        run_turn(turn, 1)
        calls.append(max(10, round(0.01 / max(sum(times[step][-1] for step in turn), 1e-7))))
    rounds = 0
    start = time.perf_counter()
    while rounds < 5 or time.perf_counter() - start < min_run_time * len(turns):
        for turn, count in zip(turns, calls):
            run_turn(turn, count)
        rounds += 1
    return {step: statistics.median(samples) for step, samples in times.items()}, rounds


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="quick", choices=sorted(SWEEPS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("python_step_benchmark: --device=cuda: no CUDA device")
    min_run_time = 0.01 if args.preset == "smoke" else 0.5

    threads = torch.get_num_threads()
    rows = []
    ranks, widths, layer_counts = SWEEPS[args.preset]
    for r in ranks:
        for width in widths:
            for layers in layer_counts:
                optimizers = {name: make(make_layers(r, width, layers, args.device)) for name, make in METHODS}
                for optimizer in optimizers.values():
                    optimizer.step()  # state exists from here on
                # lorafa's C++ step alone on python_lorafa's layers, call by call in turn with its step().
                turns = [[optimizer.step] for optimizer in optimizers.values()]
                optimizers["python_lorafa_cpp_step"] = _CppStepOnly(optimizers["python_lorafa"])
                turns[0].append(optimizers["python_lorafa_cpp_step"].step)
                medians, rounds = time_in_turns(turns, args.device, min_run_time)
                for name, optimizer in optimizers.items():
                    median = medians[optimizer.step]
                    rows.append({"name": name, "r": r, "width": width, "layers": layers,
                                 "median_us": median * 1e6, "runs": rounds})
                    print(f"{name}/r:{r}/width:{width}/layers:{layers}  {median * 1e6:10.1f} us", flush=True)
    context = {"torch": torch.__version__, "peft": peft.__version__, "lorafa": lorafa.__version__,
               "device": args.device, "host": platform.node(), "threads": threads,
               "timing": "each call by itself, methods in turns of about 10 ms, median"}
    with open(args.out, "w") as f:
        json.dump({"context": context, "benchmarks": rows}, f, indent=1)


if __name__ == "__main__":
    main()
