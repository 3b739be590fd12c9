"""Optimizer step time from Python: lorafa.LoraFAOptimizer against PEFT's LoraFAOptimizer and
torch.optim.AdamW(fused=True) on A and B (what a LoRA user already has), over the same LoRA layers.

    python3 python_step_benchmark.py --preset=quick --device=cpu --out=python_step.json

Timing is torch.utils.benchmark's (blocked_autorange: whole blocks of steps, CUDA synchronised) with
torch's own thread count, the one a training script gets (the Timer's default is one thread); the JSON
records it. Each row is the median time of one `step()`. "python_lorafa_cpp_step" is lorafa's C++ step
alone on the same layers, its lists planned once: Python's step() over it is what the Python front
end costs. The report (tools/report.py) turns the JSON into a table.
"""

import argparse
import json
import platform

import peft
import peft.optimizers.lorafa as peft_lorafa
import torch
import torch.utils.benchmark as benchmark

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
    """lorafa.LoraFAOptimizer's C++ step with the lists its step() would plan, planned once."""

    def __init__(self, layers):
        optimizer = lorafa_optimizer(layers)
        optimizer.step()  # the state exists from here on
        self.planner = optimizer._planner
        self.planner.prepare(optimizer.param_groups, optimizer.state)

    def step(self):
        self.planner.run()


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
    ("python_lorafa_cpp_step", _CppStepOnly),
    ("python_peft_lorafa", peft_optimizer),
    ("python_torch_fused_adamw_a_and_b", fused_adamw_a_and_b),
]


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
                for name, make in METHODS:
                    optimizer = make(make_layers(r, width, layers, args.device))
                    optimizer.step()  # state exists from here on
                    timer = benchmark.Timer(stmt="optimizer.step()", globals={"optimizer": optimizer},
                                            num_threads=threads)
                    measurement = timer.blocked_autorange(min_run_time=min_run_time)
                    rows.append({"name": name, "r": r, "width": width, "layers": layers,
                                 "median_us": measurement.median * 1e6, "runs": len(measurement.times)})
                    print(f"{name}/r:{r}/width:{width}/layers:{layers}  {measurement.median * 1e6:10.1f} us", flush=True)
    context = {"torch": torch.__version__, "peft": peft.__version__, "lorafa": lorafa.__version__,
               "device": args.device, "host": platform.node(), "threads": threads}
    with open(args.out, "w") as f:
        json.dump({"context": context, "benchmarks": rows}, f, indent=1)


if __name__ == "__main__":
    main()
