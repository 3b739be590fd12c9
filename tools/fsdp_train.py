"""LoRA-FA on a model sharded with FSDP2: a randomly initialised tiny Llama (no download), PEFT LoRA on
q, k, v, o, gate, up and down, fully_shard on each decoder layer and on the root, lorafa's optimizer.

    torchrun --nproc-per-node=2 tools/fsdp_train.py --steps=20            # CPU, Gloo
    torchrun --nproc-per-node=8 tools/fsdp_train.py --device=cuda         # GPUs, NCCL

with lorafa installed (`pip install` of the wheel). With --checkpoint_dir, model and optimizer are saved
through torch.distributed.checkpoint every --checkpoint_every steps, and a start (or a restart by
`torchrun --max-restarts=N` after a rank died) resumes from the last complete checkpoint there, so the
run ends as if never interrupted. Each step prints the loss; at the end each rank
prints the bytes of its optimizer state against AdamW's on LoRA unsharded (two moments of A and of B),
and a checksum of the trained parameters, the same on every rank.
"""

import argparse
import gc
import hashlib
import os
import signal
import sys

import torch
import torch.distributed as dist
from peft import LoraConfig, get_peft_model
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from transformers import LlamaConfig, LlamaForCausalLM

import lorafa

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tiny_llama(seed):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config)


def local_bytes(tensor):
    local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
    return local.numel() * local.element_size()


def last_checkpoint(directory):
    """(step, path) of the newest complete checkpoint in `directory` (DCP writes .metadata last), or None."""
    if not directory or not os.path.isdir(directory):
        return None
    steps = [int(name.split("-")[1]) for name in os.listdir(directory)
             if name.startswith("step-") and os.path.exists(os.path.join(directory, name, ".metadata"))]
    return (max(steps), os.path.join(directory, f"step-{max(steps):06d}")) if steps else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--batch", type=int, default=4, help="sequences per rank")
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--checkpoint_dir", default="", help="save there, and resume from there")
    parser.add_argument("--checkpoint_every", type=int, default=5)
    parser.add_argument("--fault", default="", metavar="RANK:STEP",
                        help="for testing recovery: on the first attempt, that rank kills itself (SIGKILL) "
                             "when that step begins")
    args = parser.parse_args()

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
    # torchrun's store (torch's env:// rendezvous), with keys of this attempt only: after a restart, a
    # rank must not read the addresses its peers published before it (seen as Gloo's "Connection
    # refused" when restarting).
    store, rank, world = next(dist.rendezvous("env://"))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo", rank=rank, world_size=world,
                            store=dist.PrefixStore(f"fsdp_train/attempt_{attempt}", store))
    mesh = init_device_mesh(args.device, (world,))
    device = torch.device(args.device, local_rank) if args.device == "cuda" else torch.device("cpu")

    model = get_peft_model(tiny_llama(seed=0), LoraConfig(r=args.r, lora_alpha=2 * args.r, lora_dropout=0.0,
                                                          target_modules=TARGETS)).to(device)
    adamw_state_bytes = 2 * sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "lora_" in n)
    for layer in model.base_model.model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optimizer = lorafa.create_lorafa_optimizer(model, r=args.r, lora_alpha=2 * args.r, lr=args.lr)

    # A fixed task every rank can check: predict the next token of a repeating sequence, each rank its
    # own sequences.
    generator = torch.Generator().manual_seed(1000 + rank)
    starts = torch.randint(0, 256, (args.batch, 1), generator=generator)
    tokens = ((starts + 3 * torch.arange(args.seq)) % 256).to(device)
    first = 1
    found = last_checkpoint(args.checkpoint_dir)
    if found is not None:
        model_state, optimizer_state = get_state_dict(model, optimizer)
        dcp.load({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=found[1])
        set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state)
        first = found[0] + 1
        if rank == 0:
            print(f"resumed from {found[1]}", flush=True)
    fault_rank, fault_step = (int(x) for x in args.fault.split(":")) if args.fault else (-1, -1)
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    for step in range(first, args.steps + 1):
        if rank == fault_rank and step == fault_step and first_attempt:
            os.kill(os.getpid(), signal.SIGKILL)
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        optimizer.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        if rank == 0:
            print(f"step {step} loss {mean.item() / world:.4f}", flush=True)
        if args.checkpoint_dir and step % args.checkpoint_every == 0:
            model_state, optimizer_state = get_state_dict(model, optimizer)
            dcp.save({"model": model_state, "optimizer": optimizer_state},
                     checkpoint_id=os.path.join(args.checkpoint_dir, f"step-{step:06d}"))

    state_bytes = sum(local_bytes(t) for s in optimizer.state.values() for k, t in s.items() if k != "step")
    trained = [p for p in model.parameters() if p.requires_grad]
    digest = hashlib.sha256()
    for p in trained:
        digest.update(p.full_tensor().detach().cpu().numpy().tobytes())
    print(f"rank {rank}: optimizer state {state_bytes} bytes, {state_bytes / adamw_state_bytes:.3f}x AdamW's "
          f"{adamw_state_bytes} on LoRA unsharded; trained parameters checksum {digest.hexdigest()[:16]}",
          flush=True)
    dist.barrier()  # no rank tears its Gloo pairs down while a peer still uses them
    dist.destroy_process_group()


def leave():
    """Ends the process after main(), without finalizing the interpreter. A Gloo worker thread of c10d
    may still be dropping the last collective's work, which holds tensors that have Python objects; if it
    does so while the interpreter finalizes, it takes the GIL from a dying interpreter and the process
    aborts ("terminate called without an active exception"; about 1 run in 10 on a 2-core machine;
    stack: ProcessGroupGloo::runLoop → ~AsyncBarrierWork → TensorImpl::decref_pyobject → pthread_exit),
    and torchrun reports a finished run as failed. Everything main() made is freed first, with the
    interpreter alive."""
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
    leave()
