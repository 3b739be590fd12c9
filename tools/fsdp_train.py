"""LoRA-FA on a model sharded with FSDP2: a randomly initialised tiny Llama (no download), PEFT LoRA on
q, k, v, o, gate, up and down, fully_shard on each decoder layer and on the root, lorafa's optimizer.

    torchrun --nproc-per-node=2 tools/fsdp_train.py --steps=20            # CPU, Gloo
    torchrun --nproc-per-node=8 tools/fsdp_train.py --device=cuda         # GPUs, NCCL

with lorafa installed (`pip install` of the wheel). Each step prints the loss; at the end each rank
prints the bytes of its optimizer state against AdamW's on LoRA unsharded (two moments of A and of B),
and a checksum of the trained parameters, the same on every rank.
"""

import argparse
import hashlib
import os

import torch
import torch.distributed as dist
from peft import LoraConfig, get_peft_model
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--batch", type=int, default=4, help="sequences per rank")
    parser.add_argument("--seq", type=int, default=32)
    args = parser.parse_args()

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
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
    for step in range(1, args.steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        optimizer.step()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        if rank == 0:
            print(f"step {step} loss {mean.item() / world:.4f}", flush=True)

    state_bytes = sum(local_bytes(t) for s in optimizer.state.values() for k, t in s.items() if k != "step")
    trained = [p for p in model.parameters() if p.requires_grad]
    digest = hashlib.sha256()
    for p in trained:
        digest.update(p.full_tensor().detach().cpu().numpy().tobytes())
    print(f"rank {rank}: optimizer state {state_bytes} bytes, {state_bytes / adamw_state_bytes:.3f}x AdamW's "
          f"{adamw_state_bytes} on LoRA unsharded; trained parameters checksum {digest.hexdigest()[:16]}",
          flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
