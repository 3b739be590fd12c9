"""What lorafa needs of parameters sharded by FSDP2 (torch.distributed.fsdp.fully_shard), which are
DTensors.

The step runs on each rank's local shards (lorafa/python/sharded.h): HF-AdamW is elementwise, and
ĝ_B = g_B·P is row-local, so a B sharded by rows steps its rows with the whole r × r matrix P. P needs
the whole A, which the step gathers (DTensor.full_tensor) once per version of A's local shard, for every
pair in the same order on every rank. So the step itself communicates nothing else, except one
all-reduce of a flag when skip_nonfinite is on (every rank must skip the same steps).
"""

import sys

import torch


def dtensor_class():
    """torch.distributed.tensor.DTensor if anything imported it (nothing is sharded otherwise)."""
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None)


def check_sharding(pairs, others):
    """ValueError naming the pair or parameter whose sharding the row-local step cannot take: a mesh of
    more than one dimension, a B not sharded by rows (Shard(0)) nor replicated, a partial tensor, an A
    and B on different meshes. Plain tensors pass."""
    DTensor = dtensor_class()
    if DTensor is None:
        return

    def check_mesh(tensor, what):
        if tensor.device_mesh.ndim != 1:
            raise ValueError(f"{what} is a DTensor on a {tensor.device_mesh.ndim}-dimensional device mesh; "
                             "lorafa steps parameters sharded over one dimension (FSDP2's fully_shard over "
                             "one process group)")
        if any(placement.is_partial() for placement in tensor.placements):
            raise ValueError(f"{what} is a partial DTensor ({tensor.placements}); reduce it first")

    for pair in pairs:
        sharded = [name for name, t in (("A", pair.A), ("B", pair.B)) if isinstance(t, DTensor)]
        for name in sharded:
            check_mesh(getattr(pair, name), f"the {name} of LoRA pair '{pair.name}'")
        if isinstance(pair.B, DTensor):
            placement = pair.B.placements[0]
            if not (placement.is_replicate() or (placement.is_shard() and placement.dim == 0)):
                raise ValueError(f"the B of LoRA pair '{pair.name}' is sharded as {pair.B.placements}; lorafa "
                                 "steps a B sharded by rows (Shard(0)) or replicated, since ĝ = g·P is row-local")
        if len(sharded) == 2 and pair.A.device_mesh != pair.B.device_mesh:
            raise ValueError(f"the A and B of LoRA pair '{pair.name}' are on different device meshes")
    for index, param in enumerate(others):
        if isinstance(param, DTensor):
            check_mesh(param, f"parameter {index} (of shape {tuple(param.shape)})")


def meshes_of(params):
    """The device meshes of the DTensors among `params` (none when nothing is sharded)."""
    DTensor = dtensor_class()
    if DTensor is None:
        return []
    return list({id(p.device_mesh): p.device_mesh for p in params if isinstance(p, DTensor)}.values())


def all_ranks_agree(flag, meshes):
    """`flag` and-ed over the ranks of every mesh in `meshes` (one all-reduce each)."""
    for mesh in meshes:
        value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=mesh.device_type)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN, group=mesh.get_group())
        flag = bool(value.item())
    return flag
