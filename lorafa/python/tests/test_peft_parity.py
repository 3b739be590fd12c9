"""lorafa from Python against PEFT's own optimizer, bit for bit: a randomly initialised tiny Llama wrapped
by PEFT (with rank_pattern and alpha_pattern), trained 10 steps by PEFT's create_lorafa_optimizer and,
as a deep copy, by lorafa's with projection="peft_bf16". The parity harness's peft_bridge drives PEFT."""

import pytest
import torch

import lorafa
import peft_bridge

STEPS = 10
LR = 1e-2


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bitwise_with_peft_on_a_tiny_llama(dtype):
    lora_kwargs = {
        "r": 4, "lora_alpha": 8.0, "lora_dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "rank_pattern": {"q_proj": 2}, "alpha_pattern": {"down_proj": 3.0},
    }
    run = peft_bridge.ModelRun("llama", 7, dtype, lora_kwargs, LR, 0.0, {})
    optimizer = lorafa.create_lorafa_optimizer(run.lorafa_model, lr=LR, projection="peft_bf16")
    scalings = {round(pair.scaling, 6) for pair in optimizer.lora_pairs}
    assert len(scalings) == 3, scalings  # 8/4 everywhere but q (8/2) and down (3/4): the patterns are read
    for step in range(1, STEPS + 1):
        batch = run.batch(4)
        peft_loss = run.peft_step(batch, 1, False)
        lorafa_loss = run.lorafa_forward_backward(batch, 1)
        optimizer.step()
        assert lorafa_loss == peft_loss, f"loss at step {step}"
        mine, theirs = run.base_model_state(), run.peft_parameters()
        assert mine.keys() == theirs.keys()
        for name, tensor in theirs.items():
            assert torch.equal(mine[name], tensor), f"{name} after step {step}"


def test_peft_call_shape_is_accepted():
    lora_kwargs = {"r": 4, "lora_alpha": 8.0, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    run = peft_bridge.ModelRun("llama", 3, "float32", lora_kwargs, LR, 0.0, {})
    optimizer = lorafa.create_lorafa_optimizer(run.lorafa_model, 4, 8.0, LR, 0.0, False)  # PEFT's signature
    assert optimizer.param_groups[0]["lr"] == LR and optimizer.param_groups[0]["projection"] == "exact"
    assert all(not pair.A.requires_grad for pair in optimizer.lora_pairs)
    assert len(optimizer.lora_pairs) == 2 * peft_bridge.LLAMA_SHAPE["layers"]
