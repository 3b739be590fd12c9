"""lorafa.LoraFAOptimizer as a torch optimizer: schedulers, zero_grad, a B without gradient, bad input
that changes nothing, state_dict round trips, and the torch-version check at import."""

import copy
import subprocess
import sys

import pytest
import torch

import lorafa


def make_problem(dtype=torch.float32, seed=0):
    """Two pairs and one other parameter, each with a gradient."""
    generator = torch.Generator().manual_seed(seed)
    pairs, params = [], []
    for index, (r, n, out) in enumerate([(2, 16, 3), (4, 40, 7)]):
        A = torch.randn(r, n, generator=generator, dtype=dtype)
        B = (0.1 * torch.randn(out, r, generator=generator, dtype=dtype)).requires_grad_()
        B.grad = torch.randn(out, r, generator=generator, dtype=dtype)
        pairs.append((f"layer{index}.default", A, B, 1.5 + index))
        params.append(B)
    other = torch.randn(5, generator=generator, dtype=dtype).requires_grad_()
    other.grad = torch.randn(5, generator=generator, dtype=dtype)
    return params + [other], pairs


def snapshot(params, optimizer):
    return [p.detach().clone() for p in params], copy.deepcopy(optimizer.state_dict())


def assert_unchanged(before, params, optimizer):
    values, state = before
    for old, p in zip(values, params):
        assert torch.equal(old, p)
    now = optimizer.state_dict()
    assert now["param_groups"] == state["param_groups"]
    assert now["state"].keys() == state["state"].keys()
    for key, entry in state["state"].items():
        for name, tensor in entry.items():
            assert torch.equal(tensor, now["state"][key][name]), (key, name)


def test_state_is_torch_style_tensors():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    optimizer.step()
    optimizer.step()
    for p in params:
        state = optimizer.state[p]
        assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
        assert torch.is_tensor(state["step"]) and state["step"].item() == 2
        assert state["exp_avg"].shape == p.shape and state["exp_avg"].dtype == p.dtype


def test_scheduler_changes_take_effect():
    params, pairs = make_problem()
    twin_params, twin_pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 0.25)  # lr 1e-2 × 0.25 from the start
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-3)
    twin = lorafa.LoraFAOptimizer(twin_params, lr=2.5e-3, lora_pairs=twin_pairs)
    optimizer.step()
    twin.step()
    scheduler.step()
    for p, q in zip(params, twin_params):
        assert torch.equal(p, q)  # the scheduled lr is the one the step used


def test_zero_grad_and_a_b_without_gradient():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in params)
    first_B, second_B = params[0], params[1]
    untouched = (second_B.detach().clone(), optimizer.state[second_B]["exp_avg"].clone())
    first_B.grad = torch.randn_like(first_B)
    optimizer.step()  # PEFT raises here; lorafa skips the B without gradient
    assert optimizer.state[first_B]["step"].item() == 2
    assert optimizer.state[second_B]["step"].item() == 1
    assert torch.equal(untouched[0], second_B) and torch.equal(untouched[1], optimizer.state[second_B]["exp_avg"])


@pytest.mark.parametrize("bad, message", [
    ({"lr": -1.0}, "Invalid learning rate: -1"),
    ({"betas": (1.5, 0.999)}, "1.5"),
    ({"eps": -1e-8}, "-1e-08"),
    ({"projection": "fp8"}, '"fp8"'),
])
def test_bad_options_raise_naming_the_value_and_change_nothing(bad, message):
    params, pairs = make_problem()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        lorafa.LoraFAOptimizer(params, lora_pairs=pairs, **{"lr": 1e-2, **bad})
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    optimizer.step()
    before = snapshot(params, optimizer)
    optimizer.param_groups[0].update(bad)  # what a user or a scheduler could write into a group
    with pytest.raises(ValueError):
        optimizer.step()
    optimizer.param_groups[0].update({k: v for k, v in before[1]["param_groups"][0].items() if k != "params"})
    assert_unchanged(before, params, optimizer)


def test_sparse_gradient_is_a_type_error_and_changes_nothing():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    optimizer.step()
    before = snapshot(params, optimizer)
    params[-1].grad = params[-1].grad.to_sparse()
    with pytest.raises(TypeError, match="sparse"):
        optimizer.step()
    assert_unchanged(before, params, optimizer)


def test_malformed_pair_names_the_pair():
    params, pairs = make_problem()
    name, A, B, s = pairs[0]
    with pytest.raises(ValueError, match="layer0.default"):
        lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=[(name, A[:, :3].t(), B, s)])  # r disagrees
    with pytest.raises(ValueError, match="layer1.default"):
        lorafa.LoraFAOptimizer(params[:1], lr=1e-2, lora_pairs=pairs)  # a B the optimizer does not train


def test_state_dict_round_trip_continues_exactly():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, weight_decay=0.1, lora_pairs=pairs)
    optimizer.step()
    saved_params = [p.detach().clone() for p in params]
    saved = copy.deepcopy(optimizer.state_dict())
    optimizer.step()

    restored_params, restored_pairs = make_problem()
    with torch.no_grad():
        for p, value in zip(restored_params, saved_params):
            p.copy_(value)
    restored = lorafa.LoraFAOptimizer(restored_params, lr=1.0, lora_pairs=restored_pairs)
    restored.load_state_dict(saved)
    assert restored.param_groups[0]["lr"] == 1e-2 and restored.param_groups[0]["weight_decay"] == 0.1
    restored.step()
    for p, q in zip(params, restored_params):
        assert torch.equal(p, q)


def test_import_with_another_torch_names_both_versions():
    code = "import torch; torch.__version__ = '2.10.0'; import lorafa"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "2.10.0" in result.stderr and "torch 2.11.0" in result.stderr, result.stderr


def test_import_under_another_python_names_both_versions():
    code = "import torch, sys; sys.version_info = (3, 9, 0, 'final', 0); import lorafa"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    built_for = "Python %d.%d" % sys.version_info[:2]
    assert "Python 3.9" in result.stderr and built_for in result.stderr, result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: state following a parameter to the GPU needs one")
def test_state_follows_its_parameter_to_the_gpu():
    params, pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs)
    optimizer.step()
    with torch.no_grad():
        for p in params:
            p.data = p.data.cuda()
            p.grad = p.grad.cuda()
        for _, A, _, _ in pairs:
            A.data = A.data.cuda()
    optimizer.step()
    assert all(optimizer.state[p]["exp_avg"].is_cuda for p in params)


def test_skip_nonfinite_step_changes_nothing_and_is_counted():
    params, pairs = make_problem()
    twin_params, twin_pairs = make_problem()
    optimizer = lorafa.LoraFAOptimizer(params, lr=1e-2, lora_pairs=pairs, skip_nonfinite=True)
    twin = lorafa.LoraFAOptimizer(twin_params, lr=1e-2, lora_pairs=twin_pairs, skip_nonfinite=True)
    optimizer.step()
    twin.step()
    before = snapshot(params, optimizer)
    finite_grads = [p.grad.clone() for p in params]
    params[0].grad[0, 0] = float("nan")
    optimizer.step()
    assert optimizer.skipped_steps == 1
    assert_unchanged(before, params, optimizer)
    for p, grad in zip(params, finite_grads):
        p.grad = grad
    optimizer.step()
    twin.step()  # the twin never saw the bad step
    for p, q in zip(params, twin_params):
        assert torch.equal(p, q)
