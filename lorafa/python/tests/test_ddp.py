"""lorafa.LoraFAOptimizer under torch.nn.parallel.DistributedDataParallel: 2 processes with Gloo on this
machine, each on its half of the batch, against one process that runs both halves with the loss halved.

DDP divides each rank's gradient by the world size and sum-all-reduces it: g0/2 + g1/2. Halving the loss
halves every intermediate exactly (a power-of-two scaling) and autograd accumulates g0/2 + g1/2 in the
same order, so the two runs must agree bit for bit — and, A being frozen, DDP reduces only B."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from peft import LoraConfig, get_peft_model

import lorafa

STEPS, BATCH, WORLD = 5, 16, 2


def make_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8))
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["0", "2"]))


def batch():
    generator = torch.Generator().manual_seed(3)
    return torch.randn(BATCH, 16, generator=generator), torch.randn(BATCH, 8, generator=generator)


def shard(tensor, rank):
    rows = BATCH // WORLD
    return tensor[rank * rows:(rank + 1) * rows]


def lora_weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}


def train_rank(rank, store_path, out_dir):
    dist.init_process_group("gloo", init_method="file://" + store_path, rank=rank, world_size=WORLD)
    try:
        model = make_model()
        optimizer = lorafa.create_lorafa_optimizer(model, lr=1e-2, weight_decay=0.01)  # freezes every A
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        reduced = sorted(name for name, p in model.named_parameters() if p.requires_grad)
        x, target = batch()
        for _ in range(STEPS):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(ddp(shard(x, rank)), shard(target, rank)).backward()
            optimizer.step()
        torch.save({"weights": lora_weights(model), "reduced": reduced,
                    "steps": [s["step"].item() for s in optimizer.state.values()]},
                   os.path.join(out_dir, "rank%d.pt" % rank))
    finally:
        dist.destroy_process_group()


def test_ddp_with_two_processes_equals_one_process_bitwise(tmp_path):
    mp.spawn(train_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / ("rank%d.pt" % r)) for r in range(WORLD)]

    model = make_model()
    optimizer = lorafa.create_lorafa_optimizer(model, lr=1e-2, weight_decay=0.01)
    x, target = batch()
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        for rank in range(WORLD):
            (torch.nn.functional.mse_loss(model(shard(x, rank)), shard(target, rank)) / WORLD).backward()
        optimizer.step()
    expected = lora_weights(model)

    # DDP reduced only what requires grad: the B matrices, never an A.
    assert ranks[0]["reduced"] and all("lora_B" in name for name in ranks[0]["reduced"])
    for r, result in enumerate(ranks):
        assert result["steps"] == [STEPS] * len(result["steps"])
        assert result["weights"].keys() == expected.keys()
        for name, value in expected.items():
            assert torch.equal(result["weights"][name], value), "rank %d differs in %s" % (r, name)
    # Training moved every B.
    initial = lora_weights(make_model())
    assert all(not torch.equal(expected[n], initial[n]) for n in expected if "lora_B" in n)
