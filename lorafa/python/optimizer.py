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
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from . import _C
from .sharding import all_ranks_agree, check_sharding, meshes_of

PROJECTIONS = ("exact", "peft_bf16")


class LoraPair(NamedTuple):
    """One adapter on one layer: its name (for messages), frozen A, trained B and the layer's scaling."""

    name: str
    A: torch.Tensor
    B: torch.Tensor
    scaling: float


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
    """LoRA pairs from PEFT's group layout: by module path and adapter (lorafa's C++ pairing), each
    with its B's scaling, as PEFT uses it."""
    pairs = []
    for group in param_groups:
        if "names" in group:
            found = _C.pair_by_group_names(list(group["names"]), group["params"], _scaling_factors_of(group))
            pairs += [LoraPair(*pair) for pair in found]
    return pairs


def _new_planner(pairs, others):
    """A C++ step planner for these pairs and other trained tensors, with nothing planned yet."""
    return _C.StepPlanner([p.name for p in pairs], [p.A for p in pairs], [p.B for p in pairs],
                          [p.scaling for p in pairs], others)


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
        self._use_pairs(pairs)
        self._pairs_in_model = None  # create_lorafa_optimizer: the model's pairs as they are now
        self.skipped_steps = 0

    def _use_pairs(self, pairs):
        """Checks `pairs` against the groups and plans with them; on error nothing changes."""
        a_ids = {id(pair.A) for pair in pairs}  # in a group only in PEFT's layout; never stepped
        trained = [p for group in self.param_groups for p in group["params"] if id(p) not in a_ids]
        b_ids = {id(pair.B) for pair in pairs}
        others = [p for p in trained if id(p) not in b_ids]
        trained_ids = {id(p) for p in trained}
        for pair in pairs:
            if id(pair.B) not in trained_ids:
                raise ValueError(f"the B of LoRA pair '{pair.name}' is not among the optimizer's parameters")
        check_sharding(pairs, others)
        # Each step is planned and run in C++ (lorafa/python/step_planner.h), which checks the pairs here
        # and keeps each pair's cached (A Aᵀ + δI)⁺; a new state's step count takes torch's dtype
        # (float64 under a float64 default dtype, else float32).
        planner = _new_planner(pairs, others)
        # Each tensor's role by its place in the groups, to follow parameters replaced in place there.
        role_of = {id(pair.B): ("B", k) for k, pair in enumerate(pairs)}
        role_of.update({id(pair.A): ("A", k) for k, pair in enumerate(pairs)})
        self._roles = [[role_of.get(id(p), ("other", None)) for p in group["params"]] for group in self.param_groups]
        self._planner, self._lora_pairs, self._others = planner, pairs, others
        self._meshes = meshes_of(trained)  # where skip_nonfinite's verdict must be every rank's

    def _follow_replaced_parameters(self):
        """Pairs the groups' tensors anew by their places, after a framework replaced the parameters there:
        FSDP2's fully_shard makes new (DTensor) parameters, and accelerate, for one, then puts them in
        place of the old ones in param_groups. A tensor in a new place is another parameter."""
        replaced = {}
        for roles, group in zip(self._roles, self.param_groups):
            for role, param in zip(roles, group["params"]):
                if role[0] != "other":
                    replaced[role] = param
        # Where the A is not in the groups (create_lorafa_optimizer's layout), the model says which A now
        # goes with the new B.
        in_model = {pair.name: pair for pair in self._pairs_in_model()} if self._pairs_in_model else {}
        pairs = []
        for k, pair in enumerate(self._lora_pairs):
            A, B = replaced.get(("A", k), pair.A), replaced.get(("B", k), pair.B)
            if B is not pair.B and ("A", k) not in replaced:
                current = in_model.get(pair.name)
                if current is None or current.B is not B:
                    raise ValueError(f"the B of LoRA pair '{pair.name}' was replaced in param_groups, and neither "
                                     "the groups nor the model say which A goes with it: pass lora_pairs with "
                                     "the new tensors")
                A = current.A
            pairs.append(LoraPair(pair.name, A, B, pair.scaling))
        self._use_pairs(pairs)

    @property
    def lora_pairs(self):
        return list(self._lora_pairs)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        _C.validate_options(self.param_groups[-1])
        if hasattr(self, "_planner"):  # after __init__: the new tensors are other parameters
            self._use_pairs(self._lora_pairs)

    def step(self, closure=None):
        """One LoRA-FA step of every group; `closure` re-evaluates the loss, as for torch's optimizers."""
        # torch's Optimizer wraps a subclass's step in profile_hook_step: the step hooks and a
        # record_function, which costs about 25 µs a step with no profiler listening and slows the step
        # inside it by as much again (measured at 32 layers). This step is marked as wrapped already and
        # calls torch's wrapper itself only where it does something: a hook registered, or a profiler on.
        if type(self).step is not LoraFAOptimizer.step:
            return self._step(closure)  # a subclass's step, which torch's wrapper wraps already
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks or _global_optimizer_pre_hooks
                or _global_optimizer_post_hooks or torch.autograd.profiler._is_profiler_enabled):
            return _step_with_hooks(self, closure)
        loss = self._step(closure)
        self._optimizer_step_code()
        return loss

    step.hooked = True

    def _step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Everything that can fail (a sparse gradient, a pseudo-inverse, a bad option) happens for every
        # group in prepare, before any parameter or state changes; run checks the guard, steps and counts
        # each state's step up. Both run without autograd recording.
        try:
            new_states = self._planner.prepare(self.param_groups, self.state)
        except _C.UnknownParameter:
            self._follow_replaced_parameters()
            new_states = self._planner.prepare(self.param_groups, self.state)
        finite = None  # the planner's own guard, unless the verdict must be every rank's
        if self._meshes and any(group["skip_nonfinite"] for group in self.param_groups):
            finite = all_ranks_agree(self._planner.gradients_are_finite(), self._meshes)
        if not self._planner.run(finite):  # the plan lets the gradients go either way
            self.skipped_steps += 1
            return loss
        for param, state in new_states:
            self.state[param] = state
        return loss


# torch's own step wrapper (hooks, then record_function "Optimizer.step#LoraFAOptimizer.step"), for the
# steps that need it.
_step_with_hooks = torch.optim.Optimizer.profile_hook_step(LoraFAOptimizer._step)
