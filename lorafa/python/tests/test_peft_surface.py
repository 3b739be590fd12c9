"""What code written against PEFT's optimizer reads, read from lorafa: the group's "names" and
"scaling_factors", the use_rslora check with PEFT's error and warning, PEFT's group layout handed to the
optimizer directly, PEFT's option errors; and torch's conventions beside them (named_parameters, the
step count's dtype under either default dtype). Each is compared with the installed PEFT doing the same,
or is a documented difference (README, "Differences from PEFT") checked as such."""

import copy
import re
import warnings

import peft.optimizers.lorafa as peft_lorafa
import pytest
import torch
from peft import LoraConfig, get_peft_model

import lorafa
import peft_bridge

R, ALPHA, LR = 4, 8, 1e-2


def make_model(use_rslora=False, **lora_kwargs):
    """TinyNet with LoRA on its embedding and both linears (rank_pattern: fc1 has r = 2)."""
    torch.manual_seed(0)
    config = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=["emb", "fc1", "fc2"],
                        rank_pattern={"fc1": 2}, use_rslora=use_rslora, **lora_kwargs)
    model = get_peft_model(peft_bridge.TinyNet(**peft_bridge.TINY_NET_SHAPE), config)
    with torch.no_grad():  # PEFT starts embedding A at zero; frozen at zero, B could never move
        for name, param in model.named_parameters():
            if "lora_embedding_A" in name:
                param.normal_()
    return model


def peft_and_lorafa(**kwargs):
    """PEFT's and lorafa's create_lorafa_optimizer on two copies of one model, with the same arguments."""
    model = make_model(**kwargs)
    twin = copy.deepcopy(model)
    return (model, peft_lorafa.create_lorafa_optimizer(model, R, ALPHA, LR),
            twin, lorafa.create_lorafa_optimizer(twin, R, ALPHA, LR))


@pytest.mark.parametrize("use_rslora", [False, True])
def test_group_names_and_scaling_factors_mean_what_peft_means(use_rslora):
    _, theirs, _, mine = peft_and_lorafa(use_rslora=use_rslora)
    group, peft_group = mine.param_groups[0], theirs.param_groups[0]
    assert len(group["names"]) == len(group["scaling_factors"]) == len(group["params"])
    assert group["names"] == group["param_names"]  # PEFT's key and torch's say the same
    peft_scaling = dict(zip(peft_group["names"], peft_group["scaling_factors"]))
    peft_params = dict(zip(peft_group["names"], peft_group["params"]))
    for name, param, factor in zip(group["names"], group["params"], group["scaling_factors"]):
        assert factor == peft_scaling[name], name  # including None outside LoRA
        assert param.shape == peft_params[name].shape, name
    # The patterns and rsLoRA reach the factors: fc1 (r = 2) differs from fc2 (r = 4).
    factors = {n: f for n, f in zip(group["names"], group["scaling_factors"]) if f is not None}
    fc1 = factors["base_model.model.fc1.lora_B.default.weight"]
    fc2 = factors["base_model.model.fc2.lora_B.default.weight"]
    assert (fc1, fc2) == ((ALPHA / 2 ** 0.5, ALPHA / 4 ** 0.5) if use_rslora else (ALPHA / 2, ALPHA / 4))
    # Documented differences: PEFT's group holds every parameter, frozen ones too, lorafa's the trained
    # ones; and PEFT leaves lora_embedding_A trainable, lorafa freezes it.
    assert set(group["names"]) == {n for n, p in peft_params.items()
                                   if p.requires_grad and "lora_embedding_A" not in n}


def test_use_rslora_mismatch_is_pefts_error_and_changes_nothing():
    model = make_model(use_rslora=False)
    with pytest.raises(ValueError) as peft_error:
        peft_lorafa.create_lorafa_optimizer(copy.deepcopy(model), R, ALPHA, LR, use_rslora=True)
    with pytest.raises(ValueError) as error:
        lorafa.create_lorafa_optimizer(model, R, ALPHA, LR, use_rslora=True)
    assert str(error.value) == str(peft_error.value)
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_A" in n)  # nothing frozen


def test_use_rslora_given_warns_as_peft_and_absent_is_silent():
    def future_warnings(create, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            create(make_model(use_rslora=True), R, ALPHA, LR, **kwargs)
        return [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]

    theirs = future_warnings(peft_lorafa.create_lorafa_optimizer, use_rslora=True)
    assert theirs and future_warnings(lorafa.create_lorafa_optimizer, use_rslora=True) == theirs
    assert future_warnings(lorafa.create_lorafa_optimizer) == []


def test_peft_group_layout_given_to_the_optimizer_pairs_by_name():
    """PEFT's LoraFAOptimizer(param_groups) call: every parameter with "names" and "scaling_factors".
    The pairs are found, each A is left alone even with a gradient, and the steps equal those of
    create_lorafa_optimizer on a copy."""
    model = make_model()
    twin = copy.deepcopy(model)
    named = list(model.named_parameters())
    peft_group = peft_lorafa.create_lorafa_optimizer(copy.deepcopy(model), R, ALPHA, LR).param_groups[0]
    group = {"params": [p for _, p in named], "names": peft_group["names"],
             "scaling_factors": peft_group["scaling_factors"]}
    assert peft_group["names"] == [n for n, _ in named]
    for name, param in named:
        if "lora_A" in name or "lora_embedding_A" in name:
            param.requires_grad_(False)
    direct = lorafa.LoraFAOptimizer([group], lr=LR)
    created = lorafa.create_lorafa_optimizer(twin, lr=LR)
    assert sorted(p.name for p in direct.lora_pairs) == sorted(p.name for p in created.lora_pairs)
    assert len(direct.lora_pairs) == 3
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
            if p.requires_grad:
                p.grad = torch.randn(p.shape, generator=generator)
                q.grad = p.grad.clone()
        a = model.base_model.model.fc2.lora_A.default.weight
        a.grad = torch.ones_like(a)  # PEFT ignores an A's gradient; so must lorafa
        direct.step()
        created.step()
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        assert torch.equal(p, q), name


def test_legacy_scaling_factor_and_a_group_without_factors_behave_as_in_peft():
    def group(**extra):
        param = torch.nn.Parameter(torch.ones(2, 2))
        param.grad = torch.ones_like(param)
        return {"params": [param], "names": ["dummy.weight"], **extra}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lorafa.LoraFAOptimizer([group(scaling_factor=1.0)]).step()
    assert any(issubclass(w.category, FutureWarning) and "`scaling_factor` is deprecated" in str(w.message)
               for w in caught)
    with pytest.raises(KeyError) as peft_error:
        peft_lorafa.LoraFAOptimizer([group()]).step()
    with pytest.raises(KeyError) as error:
        lorafa.LoraFAOptimizer([group()])  # at construction, before anything could change
    assert str(error.value) == str(peft_error.value)


@pytest.mark.parametrize("bad", [{"lr": -1.0}, {"betas": (1.5, 0.999)}, {"betas": (0.9, -0.1)}, {"eps": -1e-8}])
def test_bad_options_raise_pefts_error_kind_and_words(bad):
    param = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError) as peft_error:
        peft_lorafa.LoraFAOptimizer([param], **bad)
    with pytest.raises(ValueError, match="^" + re.escape(str(peft_error.value).split(":")[0])):
        lorafa.LoraFAOptimizer([param], **bad)


def test_named_parameters_are_accepted_the_torch_way():
    model = make_model()
    lorafa.create_lorafa_optimizer(copy.deepcopy(model), lr=LR)  # freezes the copy's A, not model's
    for name, param in model.named_parameters():
        param.requires_grad_("lora_B" in name)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = lorafa.LoraFAOptimizer(named, lr=LR)
    assert optimizer.param_groups[0]["param_names"] == [n for n, _ in named]
    for _, p in named:
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert optimizer.state_dict()["param_groups"][0]["param_names"] == [n for n, _ in named]


def test_lorafa_freezes_embedding_a_where_peft_leaves_it_trainable():
    peft_model, _, model, _ = peft_and_lorafa()
    a = "base_model.model.emb.lora_embedding_A.default"
    assert dict(peft_model.named_parameters())[a].requires_grad  # PEFT: "lora_A" is not in the name
    assert not dict(model.named_parameters())[a].requires_grad


@pytest.mark.parametrize("first, second", [(torch.float64, torch.float32), (torch.float32, torch.float64)])
def test_every_default_dtype_steps_and_state_loads_under_the_other(first, second):
    """As torch's AdamW: the step count is float64 under a float64 default, float32 otherwise; a state
    saved under one default dtype loads under the other and the run continues exactly."""
    previous = torch.get_default_dtype()

    def train(optimizer, steps, seed):
        generator = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            for p in optimizer.param_groups[0]["params"]:
                p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
            optimizer.step()

    try:
        torch.set_default_dtype(first)
        model = make_model()
        twin = copy.deepcopy(model)
        optimizer = lorafa.create_lorafa_optimizer(model, lr=LR)
        train(optimizer, 2, seed=1)
        assert all(s["step"].dtype == first for s in optimizer.state.values())
        saved_state = copy.deepcopy(optimizer.state_dict())
        saved_weights = copy.deepcopy(model.state_dict())
        train(optimizer, 2, seed=2)

        torch.set_default_dtype(second)
        twin.load_state_dict(saved_weights)
        resumed = lorafa.create_lorafa_optimizer(twin, lr=LR)
        resumed.load_state_dict(saved_state)
        train(resumed, 2, seed=2)
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            assert torch.equal(p, q), name
        # States made under the second default take its step dtype.
        fresh = lorafa.create_lorafa_optimizer(make_model(), lr=LR)
        train(fresh, 1, seed=3)
        assert all(s["step"].dtype == second for s in fresh.state.values())
    finally:
        torch.set_default_dtype(previous)
