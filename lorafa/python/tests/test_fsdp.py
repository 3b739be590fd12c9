"""lorafa.LoraFAOptimizer on a model sharded by FSDP2 (torch.distributed.fsdp.fully_shard), 2 and 3
processes with Gloo on this machine.

Bitwise where equal by construction: each rank steps its rows of every tensor with the same kernel as
one process stepping the whole tensor, and each element's arithmetic depends only on its own row
(lorafa/cpu/fused_hf_adamw_cpu_kernel.h), P comes from the whole A (an exact gather) by the same
operations, and the moments are elementwise. So, given the same gradients, sharded and unsharded steps
agree bit for bit for any split, uneven ones included (layer widths 35 and 7 split 18/17 and 4/3 over 2
ranks, 12/12/11 and 3/3/1 over 3, and A's 4 rows 2/2/0). The gradients are given (distributed from the
same full gradient) where the point is the optimizer; where they come from FSDP2's backward on 2 ranks,
its reduce-scatter sums g0 + g1 and divides by 2, which equals the single process's g0/2 + g1/2 (halved
losses, accumulated) exactly: a sum of two terms has one order, and halving is exact. On 3 ranks the
reduce-scatter's order is its own: the gradients agree with one process's within a derived bound.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from peft import LoraConfig, get_peft_model
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, Shard, distribute_tensor

import lorafa
from fsdp_train import leave  # tools/fsdp_train.py

LR, STEPS, CHECKPOINT_STEP, BATCH = 1e-2, 6, 3, 8


def make_model(seed=0):
    """LoRA (r = 4) on Linear(16, 35) and Linear(35, 7), and the second layer's bias trained as a plain
    parameter: rows that split unevenly over 2 and 3 ranks."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 35), torch.nn.Tanh(), torch.nn.Linear(35, 7))
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["0", "2"],
                                             init_lora_weights=False))  # B ≠ 0: every term of the step is seen
    model.base_model.model[2].bias.requires_grad_(True)
    return model


def shard_model(model, mesh, mp_policy=None):
    kwargs = {"mesh": mesh} if mp_policy is None else {"mesh": mesh, "mp_policy": mp_policy}
    for layer in (model.base_model.model[0], model.base_model.model[2]):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    return model


def full(tensor):
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def gradients(model, step):
    """The same full gradient for every trained parameter on every rank (seeded by step)."""
    generator = torch.Generator().manual_seed(100 + step)
    return {name: torch.randn(p.shape, generator=generator) for name, p in model.named_parameters() if p.requires_grad}


def give_gradients(model, step):
    for (name, p), g in zip([(n, p) for n, p in model.named_parameters() if p.requires_grad],
                            gradients(model, step).values()):
        p.grad = distribute_tensor(g, p.device_mesh, p.placements) if isinstance(p, DTensor) else g.clone()


def snapshot(model, optimizer):
    """Every trained parameter with its moments and step, as whole tensors."""
    result = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        state = optimizer.state[p]
        result[name] = full(p.detach()).clone()
        for key in ("exp_avg", "exp_avg_sq"):
            result[f"{name}/{key}"] = full(state[key]).clone()
        result[f"{name}/step"] = state["step"].clone()
    return result


def assert_equal(got, want, what):
    assert got.keys() == want.keys(), what
    for key in want:
        assert torch.equal(got[key], want[key]), f"{what}: {key} differs"


def reference_run(projection, steps):
    """One process, unsharded, the same gradients: snapshots after each step."""
    model = make_model()
    optimizer = lorafa.create_lorafa_optimizer(model, lr=LR, weight_decay=0.01, projection=projection)
    snapshots = []
    for step in range(steps):
        give_gradients(model, step)
        optimizer.step()
        snapshots.append(snapshot(model, optimizer))
    return snapshots


def init(rank, world, store):
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    return init_device_mesh("cpu", (world,))


def sharded_steps_equal_unsharded(mesh, rank):
    for projection in ("exact", "peft_bf16"):
        want = reference_run(projection, STEPS)
        model = shard_model(make_model(), mesh)
        optimizer = lorafa.create_lorafa_optimizer(model, lr=LR, weight_decay=0.01, projection=projection)
        for step in range(STEPS):
            give_gradients(model, step)
            optimizer.step()
            assert_equal(snapshot(model, optimizer), want[step], f"{projection}, step {step + 1}")
        for p in (p for p in model.parameters() if p.requires_grad):
            for key in ("exp_avg", "exp_avg_sq"):  # each rank holds its rows' moments
                moment = optimizer.state[p][key]
                assert isinstance(moment, DTensor) and moment.placements == p.placements
                assert moment.to_local().shape == p.to_local().shape


def optimizer_made_before_sharding_follows_the_swap(mesh, rank):
    """accelerate's order: the optimizer first, then fully_shard, then the new parameters put in place of
    the old ones in param_groups."""
    want = reference_run("exact", 2)
    model = make_model()
    optimizer = lorafa.create_lorafa_optimizer(model, lr=LR, weight_decay=0.01)
    old_names = {id(p): name for name, p in model.named_parameters()}
    shard_model(model, mesh)
    new_params = dict(model.named_parameters())
    for group in optimizer.param_groups:
        group["params"] = [new_params[old_names[id(p)]] for p in group["params"]]
    for step in range(2):
        give_gradients(model, step)
        optimizer.step()
        assert_equal(snapshot(model, optimizer), want[step], f"swapped, step {step + 1}")
    # Without the model to tell the new A, a replaced B is an error, never a plain AdamW update.
    model = make_model()
    pairs = lorafa.create_lorafa_optimizer(model, lr=LR).lora_pairs
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = lorafa.LoraFAOptimizer(trained, lr=LR, lora_pairs=pairs)
    old_names = {id(p): name for name, p in model.named_parameters()}
    shard_model(model, mesh)
    new_params = dict(model.named_parameters())
    optimizer.param_groups[0]["params"] = [new_params[old_names[id(p)]] for p in optimizer.param_groups[0]["params"]]
    give_gradients(model, 0)
    before = [full(p.detach()).clone() for p in optimizer.param_groups[0]["params"]]
    with pytest.raises(ValueError, match="was replaced in param_groups"):
        optimizer.step()
    assert all(torch.equal(b, full(p.detach())) for b, p in zip(before, optimizer.param_groups[0]["params"]))
    assert not optimizer.state


def checkpoint_run(mesh, rank, checkpoint, out, load):
    """STEPS steps; with `load`, the first CHECKPOINT_STEP come from the checkpoint instead."""
    model = shard_model(make_model(), mesh)
    optimizer = lorafa.create_lorafa_optimizer(model, lr=LR, weight_decay=0.01)
    first = 0
    if load:
        model_state = model.state_dict()
        optimizer_state = get_optimizer_state_dict(model, optimizer)
        dcp.load({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=checkpoint)
        model.load_state_dict(model_state)
        set_optimizer_state_dict(model, optimizer, optimizer_state)
        first = CHECKPOINT_STEP
    for step in range(first, STEPS):
        give_gradients(model, step)
        optimizer.step()
        if not load and step + 1 == CHECKPOINT_STEP:
            dcp.save({"model": model.state_dict(), "optimizer": get_optimizer_state_dict(model, optimizer)},
                     checkpoint_id=checkpoint)
    result = snapshot(model, optimizer)
    if rank == 0:
        torch.save(result, out)


def backward_on_two_ranks_equals_one_process(mesh, rank, world):
    x = torch.randn(BATCH, 16, generator=torch.Generator().manual_seed(7))
    target = torch.randn(BATCH, 7, generator=torch.Generator().manual_seed(8))
    rows = BATCH // world
    reference = make_model()
    reference_optimizer = lorafa.create_lorafa_optimizer(reference, lr=LR, weight_decay=0.01)
    model = shard_model(make_model(), mesh)
    optimizer = lorafa.create_lorafa_optimizer(model, lr=LR, weight_decay=0.01)
    for _ in range(3):
        reference_optimizer.zero_grad(set_to_none=True)
        for r in range(world):  # each rank's half, its loss halved: FSDP2's (g0 + g1) / 2
            piece = slice(r * rows, (r + 1) * rows)
            (torch.nn.functional.mse_loss(reference(x[piece]), target[piece]) / world).backward()
        reference_optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        piece = slice(rank * rows, (rank + 1) * rows)
        torch.nn.functional.mse_loss(model(x[piece]), target[piece]).backward()
        optimizer.step()
    assert_equal(snapshot(model, optimizer), snapshot(reference, reference_optimizer), "backward")


def gradients_on_three_ranks_within_the_reduction_bound(mesh, rank, world):
    """FSDP2's reduce-scatter on 3 ranks sums the ranks' gradients g_r in an order of its own, and divides
    (by 3, or by a power of two before and the rest after). One process computing each rank's slice
    alone gets the same g_r bit for bit (same operations on the same shapes, the weights all-gathered
    exactly), and takes (g_0 + g_1 + g_2) / 3. Both sums of 3 terms are within γ_2·Σ|g_r| of the exact
    one (γ_2 = 2u/(1 − 2u), u = 2⁻²⁴), each division adds at most u of its result (≤ Σ|g_r|/3), and a
    power-of-two pre-division is exact. So |Δ| ≤ (2·γ_2 + 2u)·Σ|g_r|/3 ≤ 7u·Σ|g_r|/3 elementwise.
    Given equal gradients, the sharded step equals the unsharded one bit for bit (tested above), so this
    bound is all the reduction adds."""
    rows = 3
    x = torch.randn(rows * world, 16, generator=torch.Generator().manual_seed(7))
    target = torch.randn(rows * world, 7, generator=torch.Generator().manual_seed(8))
    reference = make_model()
    lorafa.create_lorafa_optimizer(reference, lr=LR)  # freezes A, as for the sharded model
    per_rank = []
    for r in range(world):
        reference.zero_grad(set_to_none=True)
        piece = slice(r * rows, (r + 1) * rows)
        torch.nn.functional.mse_loss(reference(x[piece]), target[piece]).backward()
        per_rank.append({n: p.grad.clone() for n, p in reference.named_parameters() if p.requires_grad})
    model = shard_model(make_model(), mesh)
    lorafa.create_lorafa_optimizer(model, lr=LR)
    piece = slice(rank * rows, (rank + 1) * rows)
    torch.nn.functional.mse_loss(model(x[piece]), target[piece]).backward()
    u = 2.0 ** -24
    checked = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        terms = [g[name] for g in per_rank]
        want = (terms[0] + terms[1] + terms[2]) / 3
        bound = 7 * u * sum(t.abs() for t in terms) / 3
        difference = (full(p.grad) - want).abs()
        assert bool((difference <= bound).all()), f"{name}: {(difference - bound).max().item()} over the bound"
        checked += 1
    assert checked == 3  # two pairs' B, and the bias


def clipping_and_mixed_precision(mesh, rank):
    """bfloat16 parameters for compute, float32 reduction: the sharded parameters, their gradients and
    the moments stay float32 DTensors; clip_grad_norm_ works on the DTensor gradients before the step."""
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    model = shard_model(make_model(), mesh, policy)
    optimizer = lorafa.create_lorafa_optimizer(model, lr=LR)
    x = torch.randn(BATCH, 16, generator=torch.Generator().manual_seed(7))
    target = torch.randn(BATCH, 7, generator=torch.Generator().manual_seed(8))
    losses = []
    for _ in range(8):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x).float(), target)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_norm=0.5)
        assert torch.isfinite(full(norm))
        clipped = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        assert full(clipped).item() <= 0.5 * (1 + 1e-5)  # clip scales by max_norm / (norm + 1e-6)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for p in (p for p in model.parameters() if p.requires_grad):
        assert p.dtype == torch.float32 and optimizer.state[p]["exp_avg"].dtype == torch.float32


def bad_sharding_is_named(mesh, rank, world):
    """A B sharded by columns, a mesh of two dimensions, an A whose rows are not B's r: each a
    ValueError naming the pair, with nothing changed."""
    A = distribute_tensor(torch.randn(4, 16), mesh, [Shard(0)])
    B_by_columns = torch.nn.Parameter(distribute_tensor(torch.randn(35, 4), mesh, [Shard(1)]))
    with pytest.raises(ValueError, match="LoRA pair 'bad.default'.*Shard\\(dim=1\\)"):
        lorafa.LoraFAOptimizer([B_by_columns], lr=LR, lora_pairs=[("bad.default", A, B_by_columns, 2.0)])
    B_other_r = torch.nn.Parameter(distribute_tensor(torch.randn(35, 3), mesh, [Shard(0)]))
    with pytest.raises(ValueError, match="LoRA pair 'bad.default'"):
        lorafa.LoraFAOptimizer([B_other_r], lr=LR, lora_pairs=[("bad.default", A, B_other_r, 2.0)])
    mesh_2d = init_device_mesh("cpu", (1, world), mesh_dim_names=("replicate", "shard"))
    A_2d = distribute_tensor(torch.randn(4, 16), mesh_2d, [Shard(0), Shard(0)])
    B_2d = torch.nn.Parameter(distribute_tensor(torch.randn(35, 4), mesh_2d, [Shard(0), Shard(0)]))
    with pytest.raises(ValueError, match="LoRA pair 'bad.default'.*2-dimensional device mesh"):
        lorafa.LoraFAOptimizer([B_2d], lr=LR, lora_pairs=[("bad.default", A_2d, B_2d, 2.0)])
    # The same check when a replaced parameter brings the bad sharding: the step raises, nothing changes.
    model = shard_model(make_model(), mesh)
    optimizer = lorafa.create_lorafa_optimizer(model, lr=LR)
    give_gradients(model, 0)
    optimizer.step()
    before = snapshot(model, optimizer)
    optimizer.param_groups[0]["params"][0] = B_by_columns
    B_by_columns.grad = distribute_tensor(torch.randn(35, 4), mesh, [Shard(1)])
    with pytest.raises(ValueError):
        optimizer.step()
    assert_equal(snapshot(model, optimizer), before, "after a refused step")


def run_rank(rank, world, store, tmp, scenario):
    mesh = init(rank, world, store)
    try:
        if scenario == "two":
            sharded_steps_equal_unsharded(mesh, rank)
            optimizer_made_before_sharding_follows_the_swap(mesh, rank)
            checkpoint_run(mesh, rank, os.path.join(tmp, "checkpoint"), os.path.join(tmp, "uninterrupted.pt"), False)
            backward_on_two_ranks_equals_one_process(mesh, rank, world)
            clipping_and_mixed_precision(mesh, rank)
            bad_sharding_is_named(mesh, rank, world)
        elif scenario == "three":
            sharded_steps_equal_unsharded(mesh, rank)
            gradients_on_three_ranks_within_the_reduction_bound(mesh, rank, world)
            checkpoint_run(mesh, rank, os.path.join(tmp, "checkpoint"), os.path.join(tmp, "resumed3.pt"), True)
        elif scenario == "resume-two":
            checkpoint_run(mesh, rank, os.path.join(tmp, "checkpoint"), os.path.join(tmp, "resumed2.pt"), True)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # Every check passed: the rank frees everything with the interpreter alive (lorafa's teardown
    # included), then leaves without finalizing it, for the reason tools/fsdp_train.py's leave() gives.
    del mesh
    leave()


def spawn(world, tmp, scenario):
    store = os.path.join(tmp, f"store-{scenario}")
    mp.spawn(run_rank, args=(world, store, tmp, scenario), nprocs=world, join=True)


def test_fsdp2_two_ranks_then_resume_on_two_and_three(tmp_path):
    tmp = str(tmp_path)
    spawn(2, tmp, "two")  # every check on 2 ranks, and a checkpoint at step 3 of an uninterrupted run
    spawn(2, tmp, "resume-two")  # a fresh process group loads it: bitwise the uninterrupted run
    spawn(3, tmp, "three")  # 3 ranks: steps as one process does, and the 2-rank checkpoint resharded
    uninterrupted = torch.load(os.path.join(tmp, "uninterrupted.pt"))
    assert_equal(torch.load(os.path.join(tmp, "resumed2.pt")), uninterrupted, "2 → 2 ranks")
    # Resharding moves rows between ranks; each row's arithmetic is its own, so this is bitwise too.
    assert_equal(torch.load(os.path.join(tmp, "resumed3.pt")), uninterrupted, "2 → 3 ranks")
