"""The Python step's fast paths keep torch's behaviour.

- A step after the first reuses its plan (lorafa/python/step_planner.h) and refreshes only the options,
  the gradients and the cached matrices. Every other change between steps must be seen: each is made
  here between two steps, and the result must equal, bit for bit, an optimizer that plans every step
  anew (a new LoraFAOptimizer loaded with the state). Where the state dict is entry for entry the one
  the last step saw, the refresh does not even look the parameters up in it. Both run the same C++ step on the same lists, so
  equality holds by construction.
- The plan holds no gradient between steps, as torch's optimizers hold none: zero_grad() frees them.
- torch's step wrapper (hooks, then a record_function for the profiler) runs only where it does
  something; the hooks and the profiler's event must be there as with torch's optimizers.
"""

import copy
import gc
import weakref

import pytest
import torch
import torch.optim.optimizer as torch_optimizer
import torch.profiler

import lorafa

from test_optimizer import make_problem


def step_planned_anew(previous, params, pairs):
    """One step by a fresh optimizer holding `previous`'s groups and state: a plan made from nothing."""
    fresh = lorafa.LoraFAOptimizer(params, lr=previous.defaults["lr"], lora_pairs=pairs)
    fresh.load_state_dict(previous.state_dict())
    for group, source in zip(fresh.param_groups, previous.param_groups):
        group["lr"] = source["lr"]
    fresh.step()
    return fresh


def assert_same(optimizer, params, twin, twin_params, after):
    for p, q in zip(params, twin_params):
        assert torch.equal(p, q), after
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(optimizer.state[p][key], twin.state[q][key]), (after, key)


def new_gradients(params, pairs, optimizer):
    for p in params:
        p.grad = torch.full_like(p, 0.25) + p.detach()


def lower_lr(params, pairs, optimizer):
    optimizer.param_groups[0]["lr"] *= 0.5


def drop_one_gradient(params, pairs, optimizer):
    params[1].grad = None


def restore_the_gradient(params, pairs, optimizer):
    params[1].grad = torch.ones_like(params[1])


def change_A_in_place(params, pairs, optimizer):
    pairs[0][1].mul_(2.0)  # a new version of A: its pseudo-inverse is computed again


def replace_a_moment(params, pairs, optimizer):
    state = optimizer.state[params[0]]
    state["exp_avg"] = state["exp_avg"] * 0.5


def replace_the_state(params, pairs, optimizer):
    optimizer.load_state_dict(optimizer.state_dict())


def load_a_copy_of_the_state(params, pairs, optimizer):
    optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # new dicts of new tensors, same sizes


def gradient_in_place(params, pairs, optimizer):
    params[2].grad.mul_(-3.0)


def move_a_parameter_in_place(params, pairs, optimizer):
    params[2].data = params[2].data.clone()  # module.to() and friends set .data


def reorder_the_state(params, pairs, optimizer):
    # The same dicts under the same parameters, in another order: the plan's record of the state no
    # longer matches entry by entry, so each parameter's state is looked up again.
    entries = list(optimizer.state.items())
    optimizer.state.clear()
    optimizer.state.update(reversed(entries))


def copy_a_state_dict(params, pairs, optimizer):
    optimizer.state[params[1]] = dict(optimizer.state[params[1]])  # the same tensors in a new dict


def forget_a_state(params, pairs, optimizer):
    del optimizer.state[params[0]]  # its moments start again from zero


CHANGES = [new_gradients, lower_lr, drop_one_gradient, restore_the_gradient, change_A_in_place,
           replace_a_moment, replace_the_state, load_a_copy_of_the_state, gradient_in_place, move_a_parameter_in_place,
           reorder_the_state, copy_a_state_dict, forget_a_state, new_gradients]


def test_every_change_between_steps_is_seen_as_a_new_plan_would_see_it():
    params, pairs = make_problem()
    twin_params, twin_pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    twin = lorafa.LoraFAOptimizer(twin_params, lr=1e-2, lora_pairs=twin_pairs)
    optimizer.step()
    twin.step()
    optimizer.step()  # the plan is reused from here on
    twin = step_planned_anew(twin, twin_params, twin_pairs)
    assert_same(optimizer, params, twin, twin_params, "a second step")
    for change in CHANGES:
        # A step with nothing changed first, so that the change meets a plan that has seen the state.
        optimizer.step()
        twin = step_planned_anew(twin, twin_params, twin_pairs)
        change(params, pairs, optimizer)
        change(twin_params, twin_pairs, twin)
        optimizer.step()
        twin = step_planned_anew(twin, twin_params, twin_pairs)
        assert_same(optimizer, params, twin, twin_params, change.__name__)


@pytest.mark.parametrize("finite", [True, False], ids=["stepped", "skipped"])
def test_zero_grad_frees_the_gradients_of_the_last_step(finite):
    """A gradient held by the plan would live until the next step, beside the next backward's. A tensor
    whose last owner is C++ keeps its Python object alive (torch preserves it), so a weak reference
    tells whether anything still holds it."""
    for make_optimizer in (lambda params, pairs: lorafa.LoraFAOptimizer(params, lora_pairs=pairs, skip_nonfinite=True),
                           lambda params, pairs: torch.optim.AdamW(params)):  # the test's own check
        params, pairs = make_problem()
        optimizer = make_optimizer(params, pairs)
        for _ in range(2):  # the second step is the planned one
            for p in params:
                p.grad = torch.ones_like(p) if finite else torch.full_like(p, float("nan"))
            gradients = [weakref.ref(p.grad) for p in params]
            optimizer.step()
            optimizer.zero_grad()
            gc.collect()
            assert [ref() is None for ref in gradients] == [True] * len(params), type(optimizer).__name__


def test_a_sparse_gradient_after_a_planned_step_still_raises():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    optimizer.step()
    params[2].grad = params[2].grad.to_sparse()
    try:
        optimizer.step()
        raise AssertionError("a sparse gradient was accepted")
    except TypeError as error:
        assert "sparse" in str(error)


def test_step_hooks_run_once_each_as_for_torch_optimizers():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    calls = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: calls.append(("pre", opt is optimizer)))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append(("post", opt is optimizer)))
    handle = torch_optimizer.register_optimizer_step_pre_hook(lambda opt, args, kwargs: calls.append(("global", True)))
    try:
        optimizer.step()
    finally:
        handle.remove()
    assert calls == [("global", True), ("pre", True), ("post", True)]
    assert optimizer.state[params[0]]["step"].item() == 1


def test_a_pre_hook_may_replace_the_closure():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: ((opt, lambda: torch.tensor(7.0)), {}))
    assert optimizer.step().item() == 7.0


def test_a_subclass_step_runs_the_hooks_once():
    class Logged(lorafa.LoraFAOptimizer):
        def step(self, closure=None):
            return super().step(closure)

    params, pairs = make_problem()
    optimizer = Logged(params, lr=1e-2, lora_pairs=pairs)
    calls = []
    optimizer.register_step_post_hook(lambda *_: calls.append("post"))
    optimizer.step()
    assert calls == ["post"]
    assert optimizer.state[params[0]]["step"].item() == 1


def test_the_profiler_sees_the_step_under_torchs_name():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        optimizer.step()
    names = {event.name for event in profile.events()}
    assert "Optimizer.step#LoraFAOptimizer.step" in names
