"""The cases where PEFT's optimizer fails or is wrong — two adapters on one layer, a lora_B bias, an
embedding adapter — against the float64 reference (float64_reference.py), lorafa in float64."""

import torch
from peft import LoraConfig, get_peft_model

import lorafa
import peft_bridge
from float64_reference import Float64LoraFA

STEPS, LR, WEIGHT_DECAY = 5, 1e-2, 0.05


def test_two_adapters_lora_bias_and_embedding_follow_the_reference():
    torch.manual_seed(3)
    config = dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["emb", "fc1", "fc2"])
    model = get_peft_model(peft_bridge.TinyNet(**peft_bridge.TINY_NET_SHAPE), LoraConfig(**config))
    # A second adapter on the linear layers, with a lora_B bias (PEFT has none for embeddings).
    model.add_adapter("second", LoraConfig(r=2, lora_alpha=3, lora_dropout=0.0, target_modules=["fc1", "fc2"],
                                           lora_bias=True))
    model.base_model.set_adapter(["default", "second"])  # both adapters trained
    model.to(torch.float64)
    with torch.no_grad():  # PEFT starts embedding A at zero; frozen at zero, B could never move
        for name, param in model.named_parameters():
            if "lora_embedding_A" in name:
                param.normal_()

    optimizer = lorafa.create_lorafa_optimizer(model, lr=LR, weight_decay=WEIGHT_DECAY)
    pairs = optimizer.lora_pairs
    assert len(pairs) == 5  # emb, fc1, fc2 × "default" and fc1, fc2 × "second"
    b_ids = {id(pair.B) for pair in pairs}
    others = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in b_ids]
    assert any("lora_B" in n and n.endswith("bias") for n, _ in others)  # lora_bias: trained, by HF-AdamW

    reference = Float64LoraFA(LR, weight_decay=WEIGHT_DECAY)
    expected = {id(p): p.detach().clone() for p in optimizer.param_groups[0]["params"]}
    generator = torch.Generator().manual_seed(9)
    for step in range(1, STEPS + 1):
        for p in optimizer.param_groups[0]["params"]:
            p.grad = torch.randn(p.shape, generator=generator, dtype=torch.float64)
        for pair in pairs:
            projected = reference.project(pair.A, pair.B.grad, pair.scaling).reshape(pair.B.shape)
            expected[id(pair.B)] = reference.update(id(pair.B), expected[id(pair.B)], projected)
        for _, p in others:
            expected[id(p)] = reference.update(id(p), expected[id(p)], p.grad)
        optimizer.step()
        # Both sides compute the same float64 formulas and differ in summation order and the SVD
        # algorithm: eps (2.2e-16) × κ(A Aᵀ) (< 50 for these A) × ~10 operations × 5 steps < 1e-12
        # relative, with lr·step as the floor for coordinates that pass near zero.
        for p in optimizer.param_groups[0]["params"]:
            torch.testing.assert_close(p.detach(), expected[id(p)], rtol=1e-12, atol=1e-12 * LR * step)
