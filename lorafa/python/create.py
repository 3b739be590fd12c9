"""create_lorafa_optimizer for a PEFT model: the drop-in replacement for PEFT's function of that name.

Pairs are found by module path and adapter name — every adapter of every LoRA layer (Linear, Conv,
and Embedding's lora_embedding_A/B) — and each pair's scaling is read from its own layer, so
rank_pattern, alpha_pattern and rsLoRA are right. Every A is frozen; every other parameter that
requires a gradient (a lora_B bias, modules_to_save, a head) gets a plain HF-AdamW update.

What code can read is PEFT's: the group carries "names" and "scaling_factors" aligned with its
"params" (a parameter's name, and its layer's scaling for names with ".lora_", else None), use_rslora
is checked against the active adapters with PEFT's error and FutureWarning. Differences from PEFT
(README, "Differences from PEFT"): PEFT pairs parameters by their order, so two adapters on a layer
crash it; its projection runs in bfloat16 (here the default projection is "exact";
projection="peft_bf16" reproduces PEFT bit for bit); its group holds every parameter of the model,
frozen ones too, where this one holds those that are trained.
"""

import warnings
import weakref
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


def _peft_scaling_factor(model: torch.nn.Module, name: str):
    """What PEFT puts in "scaling_factors" for parameter `name`: its layer's scaling for the adapter
    named after ".lora_<kind>.", or None (not a LoRA parameter, or no such scaling)."""
    if ".lora_" not in name:
        return None
    module_name, _, suffix = name.rpartition(".lora_")
    parts = suffix.split(".")
    if len(parts) < 2:
        return None
    scaling = getattr(model.get_submodule(module_name), "scaling", None)
    return scaling[parts[1]] if isinstance(scaling, dict) and parts[1] in scaling else None


def _check_use_rslora(model: torch.nn.Module, use_rslora: Optional[bool]):
    """PEFT's deprecated use_rslora argument: it must agree with every active adapter's LoraConfig
    (each pair's scaling is read from its layer either way). PEFT's ValueError and FutureWarning."""
    if use_rslora is None:
        return
    configs = getattr(model, "peft_config", None) or {}
    active = [adapter for adapter in (getattr(model, "active_adapters", None) or []) if adapter in configs]
    mismatched = [adapter for adapter in active if bool(getattr(configs[adapter], "use_rslora", False)) != use_rslora]
    if mismatched:
        raise ValueError(
            f"`use_rslora={use_rslora}` was passed to create_lorafa_optimizer, but the following active adapters "
            f"have `use_rslora` set differently in the model config: {mismatched}. Please configure "
            "rsLoRA via LoraConfig and remove the `use_rslora` argument from create_lorafa_optimizer as the parameter "
            "is deprecated."
        )
    warnings.warn(
        "`use_rslora` in create_lorafa_optimizer is deprecated and will be removed after 2026-11-01. "
        "Please configure rsLoRA via LoraConfig instead.",
        FutureWarning,
        stacklevel=3,
    )


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
    use_rslora=None)` or as `create_lorafa_optimizer(model, lr=..., ...)`. Each pair's scaling comes
    from its layer; r and lora_alpha are accepted for PEFT's call shape (PEFT, too, uses them only for
    its deprecated "scaling_factor" key), and use_rslora is checked as PEFT checks it.
    """
    del r, lora_alpha  # PEFT's call shape; the layers know their own scaling
    if lr is None:
        raise TypeError("create_lorafa_optimizer needs lr")
    _check_use_rslora(model, use_rslora)
    # A pair whose B the user froze is left alone, like any frozen parameter.
    pairs = [pair for pair in _lora_pairs(model) if pair.B.requires_grad]
    if not pairs:
        raise ValueError("create_lorafa_optimizer: the model has no LoRA layer (lora_A/lora_B or "
                         "lora_embedding_A/lora_embedding_B with a scaling)")
    a_ids = {id(pair.A) for pair in pairs}
    # Validate everything before freezing anything: a bad option must leave the model as it was.
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in a_ids]
    optimizer = LoraFAOptimizer(trained, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                correct_bias=correct_bias, projection=projection, pinv_delta=pinv_delta,
                                lora_pairs=pairs, skip_nonfinite=skip_nonfinite)
    group = optimizer.param_groups[0]
    group["names"] = list(group["param_names"])  # PEFT's key, beside torch's
    group["scaling_factors"] = [_peft_scaling_factor(model, name) for name in group["names"]]
    for pair in pairs:
        pair.A.requires_grad_(False)
    # After FSDP2's fully_shard replaced the model's parameters (and accelerate, say, put the new ones in
    # param_groups), the model tells which new A goes with each new B. Held weakly: the optimizer must
    # not keep a model alive.
    model_ref = weakref.ref(model)
    optimizer._pairs_in_model = lambda: _lora_pairs(model_ref()) if model_ref() is not None else []
    return optimizer
