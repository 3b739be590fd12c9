"""LoraFAOptimizer: a torch.optim.Optimizer whose step is lorafa's C++ LoRA-FA step.

For each LoRA pair (A frozen, B trained, layer scaling s) the gradient of B becomes
    ĝ_B = (1/s²) · g_B · (A Aᵀ + δI)⁺
before an HF-AdamW update of B; every other parameter gets a plain HF-AdamW update. The arithmetic is
lorafa's one functional step (lorafa/step.h), the same the C++ optimizer runs.

Torch conventions hold: param_groups carry the hyperparameters (LR schedulers and transformers'
Trainer change group["lr"]), the state of each parameter is self.state[param] = {"step", "exp_avg",
"exp_avg_sq"} as tensors, so state_dict() / load_state_dict() and checkpoints work the torch way, and a
parameter's state follows it to another device at the next step. `named_parameters()` is accepted as
torch's optimizers accept it (the names are kept in group["param_names"]).

    optimizer = LoraFAOptimizer(trainable, lora_pairs=[("q.default", A, B, 2.0)], lr=2e-4)

Pairs come from `lora_pairs`, or else from PEFT's group layout, as PEFT's LoraFAOptimizer takes it:
groups with "names" and "scaling_factors" aligned with "params", where a `….lora_A.<adapter>.weight`
and the `….lora_B.<adapter>.weight` of the same module form a pair (lora_embedding_A/B likewise).
"""

import warnings
from typing import Iterable, NamedTuple, Optional, Sequence, Tuple

import torch

from . import _C

PROJECTIONS = ("exact", "peft_bf16")


class LoraPair(NamedTuple):
    """One adapter on one layer: its name (for messages), frozen A, trained B and the layer's scaling."""

    name: str
    A: torch.Tensor
    B: torch.Tensor
    scaling: float


# The A and B names of a pair in PEFT's naming: "<module>.lora_A.<adapter>.weight" and
# "<module>.lora_embedding_A.<adapter>".
_A_TO_B = ((".lora_A.", ".lora_B."), (".lora_embedding_A.", ".lora_embedding_B."))


def _step_dtype():
    """The dtype of a state's step count, as torch's own optimizers choose it: float64 under a float64
    default dtype, float32 otherwise."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _scaling_factors_of(group):
    """A PEFT-layout group's per-parameter scalings, as PEFT's step reads them."""
    if "scaling_factors" in group:
        return list(group["scaling_factors"])
    if "scaling_factor" in group:
        warnings.warn("`scaling_factor` is deprecated and will be removed after 2026-11-01. "
                      "Please use `scaling_factors` instead.", FutureWarning)
        return [group["scaling_factor"]] * len(group["params"])
    raise KeyError("Expected optimizer param group to define `scaling_factors`.")


def _pairs_from_group_names(param_groups):
    """LoRA pairs from PEFT's group layout: by module path and adapter name, B's scaling as PEFT uses."""
    pairs = []
    for group in param_groups:
        if "names" not in group:
            continue
        names, params, factors = list(group["names"]), group["params"], _scaling_factors_of(group)
        if not len(names) == len(params) == len(factors):
            raise ValueError(f"a param group's 'names' ({len(names)}), 'params' ({len(params)}) and "
                             f"'scaling_factors' ({len(factors)}) must be aligned")
        by_name = {name: (param, factor) for name, param, factor in zip(names, params, factors)}
        for a_name, (A, _) in by_name.items():
            for a_part, b_part in _A_TO_B:
                if a_part not in a_name:
                    continue
                module, _, rest = a_name.rpartition(a_part)
                found = by_name.get(module + b_part + rest)
                if found is None:
                    continue
                B, scaling = found
                adapter = rest.split(".")[0]
                if scaling is None:
                    raise ValueError(f"LoRA pair '{module}.{adapter}': its B has no scaling in 'scaling_factors'")
                pairs.append(LoraPair(f"{module}.{adapter}", A, B, float(scaling)))
    return pairs


class _PairEntry(NamedTuple):
    pair: LoraPair
    projection: "_C.PairProjection"  # the cached (A Aᵀ + δI)⁺ of this pair


class LoraFAOptimizer(torch.optim.Optimizer):
    """LoRA-FA over `params` (every trained tensor: each pair's B and any other parameter).

    lora_pairs: LoraPair (or (name, A, B, scaling) tuples); each B must be among `params`, each A is
        frozen and is not. Without it, pairs are read from groups in PEFT's layout ("names",
        "scaling_factors"), whose params hold the A too: an A is never updated, its gradient ignored.
    projection: "exact" (lorafa's: ĝ in the parameters' precision) or "peft_bf16" (PEFT's bfloat16
        product, bit for bit).
    The rest as HF-AdamW: lr, betas, eps, weight_decay (applied after the update), correct_bias.
    pinv_delta: δ in (A Aᵀ + δI)⁺.
    skip_nonfinite: a step whose gradients hold NaN or Inf changes nothing and is counted in
        `skipped_steps` (default False: PEFT's behaviour, where NaN spreads into B and its moments).
    Bad values raise ValueError / TypeError naming them, before anything changes.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        correct_bias: bool = True,
        projection: str = "exact",
        pinv_delta: float = 1e-8,
        lora_pairs: Optional[Sequence] = None,
        skip_nonfinite: bool = False,
    ):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, correct_bias=correct_bias,
                        projection=projection, pinv_delta=pinv_delta, skip_nonfinite=skip_nonfinite)
        _C.validate_options(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            _C.validate_options(group)

        if lora_pairs is None:
            pairs = _pairs_from_group_names(self.param_groups)
        else:
            pairs = [LoraPair(name, A, B, float(scaling)) for name, A, B, scaling in lora_pairs]
        self._frozen_ids = {id(pair.A) for pair in pairs}  # in a group only in PEFT's layout; never stepped
        trained = [p for group in self.param_groups for p in group["params"] if id(p) not in self._frozen_ids]
        b_ids = {id(pair.B) for pair in pairs}
        others = [p for p in trained if id(p) not in b_ids]
        _C.validate_pairs([p.name for p in pairs], [p.A for p in pairs], [p.B for p in pairs],
                          [p.scaling for p in pairs], others)
        trained_ids = {id(p) for p in trained}
        for pair in pairs:
            if id(pair.B) not in trained_ids:
                raise ValueError(f"the B of LoRA pair '{pair.name}' is not among the optimizer's parameters")
        self._pairs = {id(pair.B): _PairEntry(pair, _C.PairProjection()) for pair in pairs}
        self.skipped_steps = 0

    @property
    def lora_pairs(self):
        return [entry.pair for entry in self._pairs.values()]

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        _C.validate_options(self.param_groups[-1])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Everything that can fail (a sparse gradient, a pseudo-inverse, a bad option) happens for every
        # group before any parameter or state changes; the C++ step counts each state's step up.
        plans = [self._plan(group) for group in self.param_groups]
        guarded = [grad for group, (lists, _) in zip(self.param_groups, plans) if group.get("skip_nonfinite")
                   for grad in lists["grad_B"] + lists["grads"]]
        if guarded and not _C.gradients_are_finite(guarded):
            self.skipped_steps += 1
            return loss
        for group, (lists, new_states) in zip(self.param_groups, plans):
            _C.step(group, **lists)
            for param, state in new_states:
                self.state[param] = state
        return loss

    def _plan(self, group):
        """The C++ step's lists for one group, and the states to store once it has run (new ones, and
        ones whose moments moved to their parameter's device or dtype)."""
        _C.validate_options(group)
        lists = {key: [] for key in ("B", "grad_B", "exp_avg_B", "exp_avg_sq_B", "projection", "scaling", "step_B",
                                     "params", "grads", "exp_avg", "exp_avg_sq", "step")}
        new_states = []
        projection, pinv_delta = group["projection"], group["pinv_delta"]
        for param in group["params"]:
            grad = param.grad
            if grad is None or id(param) in self._frozen_ids:  # a B without gradient: PEFT raises
                continue
            if grad.is_sparse:
                raise TypeError("LoraFAOptimizer does not support sparse gradients")
            state = self.state.get(param)
            if not state:
                zeros = torch.zeros_like(param, memory_format=torch.preserve_format)
                state = {"step": torch.tensor(0.0, dtype=_step_dtype()), "exp_avg": zeros,
                         "exp_avg_sq": zeros.clone()}
                new_states.append((param, state))
            elif state["exp_avg"].device != param.device or state["exp_avg"].dtype != param.dtype:
                state = {"step": state["step"].clone(),  # the state follows its parameter
                         "exp_avg": state["exp_avg"].to(device=param.device, dtype=param.dtype),
                         "exp_avg_sq": state["exp_avg_sq"].to(device=param.device, dtype=param.dtype)}
                new_states.append((param, state))
            entry = self._pairs.get(id(param))
            if entry is None:
                lists["params"].append(param)
                lists["grads"].append(grad)
                lists["exp_avg"].append(state["exp_avg"])
                lists["exp_avg_sq"].append(state["exp_avg_sq"])
                lists["step"].append(state["step"])
                continue
            pair = entry.pair
            lists["B"].append(param)
            lists["grad_B"].append(grad)
            lists["exp_avg_B"].append(state["exp_avg"])
            lists["exp_avg_sq_B"].append(state["exp_avg_sq"])
            lists["projection"].append(entry.projection.matrix(pair.name, pair.A, param, pair.scaling, grad,
                                                               projection, pinv_delta))
            lists["scaling"].append(pair.scaling)
            lists["step_B"].append(state["step"])
        return lists, new_states
