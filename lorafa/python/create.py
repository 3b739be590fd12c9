"""create_lorafa_optimizer for a PEFT model: the drop-in replacement for PEFT's function of that name.

Pairs are found by module path and adapter name — every adapter of every LoRA layer (Linear, Conv,
and Embedding's lora_embedding_A/B) — and each pair's scaling is read from its own layer, so
rank_pattern, alpha_pattern and rsLoRA are right. Every A is frozen; every other parameter that
requires a gradient (a lora_B bias, modules_to_save, a head) gets a plain HF-AdamW update.

Differences from PEFT: PEFT pairs parameters by their order and computes one scaling from its r and
lora_alpha arguments, so two adapters on a layer crash it and per-layer patterns are ignored; and its
projection runs in bfloat16. Here the default projection is "exact"; projection="peft_bf16"
reproduces PEFT bit for bit.
"""

from typing import Optional, Tuple

import torch

from .optimizer import LoraFAOptimizer, LoraPair


def _lora_pairs(model: torch.nn.Module):
    pairs = []
    for path, module in model.named_modules():
        scaling = getattr(module, "scaling", None)
        if not isinstance(scaling, dict):
            continue
        for a_name, b_name, weights in (("lora_A", "lora_B", True), ("lora_embedding_A", "lora_embedding_B", False)):
            a_dict, b_dict = getattr(module, a_name, None), getattr(module, b_name, None)
            if a_dict is None or b_dict is None:
                continue
            for adapter in a_dict.keys():
                if adapter not in b_dict or adapter not in scaling:
                    continue
                A, B = (a_dict[adapter].weight, b_dict[adapter].weight) if weights else (a_dict[adapter], b_dict[adapter])
                pairs.append(LoraPair(f"{path}.{adapter}", A, B, float(scaling[adapter])))
    return pairs


def create_lorafa_optimizer(
    model: torch.nn.Module,
    r: Optional[int] = None,
    lora_alpha: Optional[float] = None,
    lr: Optional[float] = None,
    weight_decay: float = 0.0,
    use_rslora: Optional[bool] = None,
    *,
    betas: Tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
    correct_bias: bool = True,
    projection: str = "exact",
    pinv_delta: float = 1e-8,
    skip_nonfinite: bool = False,
) -> LoraFAOptimizer:
    """LoRA-FA for every LoRA adapter in `model` (a PEFT model); freezes every A.

    Called as PEFT's `create_lorafa_optimizer(model, r, lora_alpha, lr, weight_decay=0.0,
    use_rslora=False)` or as `create_lorafa_optimizer(model, lr=..., ...)`. r, lora_alpha and
    use_rslora are accepted for that call only: each pair's scaling comes from its layer.
    """
    del r, lora_alpha, use_rslora  # PEFT's call shape; the layers know their own scaling
    if lr is None:
        raise TypeError("create_lorafa_optimizer needs lr")
    # A pair whose B the user froze is left alone, like any frozen parameter.
    pairs = [pair for pair in _lora_pairs(model) if pair.B.requires_grad]
    if not pairs:
        raise ValueError("create_lorafa_optimizer: the model has no LoRA layer (lora_A/lora_B or "
                         "lora_embedding_A/lora_embedding_B with a scaling)")
    a_ids = {id(pair.A) for pair in pairs}
    # Validate everything before freezing anything: a bad option must leave the model as it was.
    trained = [p for p in model.parameters() if p.requires_grad and id(p) not in a_ids]
    optimizer = LoraFAOptimizer(trained, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                correct_bias=correct_bias, projection=projection, pinv_delta=pinv_delta,
                                lora_pairs=pairs, skip_nonfinite=skip_nonfinite)
    for pair in pairs:
        pair.A.requires_grad_(False)
    return optimizer
