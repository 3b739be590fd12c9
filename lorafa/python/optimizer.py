"""LoraFAOptimizer: a torch.optim.Optimizer whose step is lorafa's C++ LoRA-FA step.

For each LoRA pair (A frozen, B trained, layer scaling s) the gradient of B becomes
    ĝ_B = (1/s²) · g_B · (A Aᵀ + δI)⁺
before an HF-AdamW update of B; every other parameter gets a plain HF-AdamW update. The arithmetic is
lorafa's one functional step (lorafa/step.h), the same the C++ optimizer runs.

Torch conventions hold: param_groups carry the hyperparameters (LR schedulers and transformers'
Trainer change group["lr"]), the state of each parameter is self.state[param] = {"step", "exp_avg",
"exp_avg_sq"} as tensors, so state_dict() / load_state_dict() and checkpoints work the torch way, and a
parameter's state follows it to another device at the next step.

    optimizer = LoraFAOptimizer(trainable, lora_pairs=[("q.default", A, B, 2.0)], lr=2e-4)
"""

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


class _PairEntry(NamedTuple):
    pair: LoraPair
    projection: "_C.PairProjection"  # the cached (A Aᵀ + δI)⁺ of this pair


class LoraFAOptimizer(torch.optim.Optimizer):
    """LoRA-FA over `params` (every trained tensor: each pair's B and any other parameter).

    lora_pairs: LoraPair (or (name, A, B, scaling) tuples); each B must be among `params`, each A is
        frozen and is not.
    projection: "exact" (lorafa's: ĝ in the parameters' precision) or "peft_bf16" (PEFT's bfloat16
        product, bit for bit).
    The rest as HF-AdamW: lr, betas, eps, weight_decay (applied after the update), correct_bias.
    pinv_delta: δ in (A Aᵀ + δI)⁺.
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
    ):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, correct_bias=correct_bias,
                        projection=projection, pinv_delta=pinv_delta)
        _C.validate_options(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            _C.validate_options(group)

        pairs = [LoraPair(*pair) for pair in (lora_pairs or [])]
        trained = [p for group in self.param_groups for p in group["params"]]
        b_ids = {id(pair.B) for pair in pairs}
        others = [p for p in trained if id(p) not in b_ids]
        _C.validate_pairs([p.name for p in pairs], [p.A for p in pairs], [p.B for p in pairs],
                          [float(p.scaling) for p in pairs], others)
        trained_ids = {id(p) for p in trained}
        for pair in pairs:
            if id(pair.B) not in trained_ids:
                raise ValueError(f"the B of LoRA pair '{pair.name}' is not among the optimizer's parameters")
        self._pairs = {id(pair.B): _PairEntry(pair, _C.PairProjection()) for pair in pairs}

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
        # Everything that can fail (a sparse or mismatched gradient, a pseudo-inverse, a bad option)
        # happens for every group before any parameter or state changes.
        plans = [self._plan(group) for group in self.param_groups]
        for group, plan in zip(self.param_groups, plans):
            _C.step(group, **plan["lists"])
            for param, state in plan["states"]:
                self.state[param] = state
                state["step"] += 1
        return loss

    def _plan(self, group):
        _C.validate_options(group)
        lists = {key: [] for key in ("B", "grad_B", "exp_avg_B", "exp_avg_sq_B", "projection", "scaling", "step_B",
                                     "params", "grads", "exp_avg", "exp_avg_sq", "step")}
        states = []
        for param in group["params"]:
            grad = param.grad
            if grad is None:  # also a B without gradient in this step, where PEFT raises
                continue
            if grad.is_sparse:
                raise TypeError("LoraFAOptimizer does not support sparse gradients")
            state = self._state_on_device(param)
            step = int(state["step"].item()) + 1
            entry = self._pairs.get(id(param))
            if entry is None:
                for key, value in (("params", param), ("grads", grad), ("exp_avg", state["exp_avg"]),
                                   ("exp_avg_sq", state["exp_avg_sq"]), ("step", step)):
                    lists[key].append(value)
            else:
                pair = entry.pair
                matrix = entry.projection.matrix(pair.name, pair.A, param, float(pair.scaling), grad, group)
                for key, value in (("B", param), ("grad_B", grad), ("exp_avg_B", state["exp_avg"]),
                                   ("exp_avg_sq_B", state["exp_avg_sq"]), ("projection", matrix),
                                   ("scaling", float(pair.scaling)), ("step_B", step)):
                    lists[key].append(value)
            states.append((param, state))
        return {"lists": lists, "states": states}

    def _state_on_device(self, param):
        """param's state (a new dict, zeros for a first step), with moments on param's device and dtype.
        Nothing is stored in self.state here: the step does that once it has succeeded."""
        old = self.state.get(param)
        if not old:
            zeros = torch.zeros_like(param, memory_format=torch.preserve_format)
            return {"step": torch.tensor(0.0), "exp_avg": zeros, "exp_avg_sq": zeros.clone()}
        return {
            "step": old["step"].clone(),
            "exp_avg": old["exp_avg"].to(device=param.device, dtype=param.dtype),
            "exp_avg_sq": old["exp_avg_sq"].to(device=param.device, dtype=param.dtype),
        }
