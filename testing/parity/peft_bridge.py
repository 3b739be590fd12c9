"""PEFT's side of lorafa's parity harness, called from C++ through pybind11.

Everything here drives the installed peft: its LoraFAOptimizer, create_lorafa_optimizer and
get_peft_model. Tensors handed in from C++ are cloned first, so neither side can disturb the other.
"""

import copy
import warnings

import accelerate
import peft
import peft.optimizers.lorafa as peft_lorafa
import torch
import transformers
from peft import LoraConfig, get_peft_model

# transformers warns about its own deprecations while building a model; they are not ours to fix.
warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

_ORIGINAL_IS_BF16_AVAILABLE = peft_lorafa.is_bf16_available


def versions():
    return {
        "torch": torch.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }


def set_peft_bf16_autocast(enabled):
    """PEFT decides on its bf16 autocast with the name it imported; patch that name, not accelerate."""
    peft_lorafa.is_bf16_available = _ORIGINAL_IS_BF16_AVAILABLE if enabled else (lambda: False)


def _clone(tensor, requires_grad):
    return tensor.detach().clone().requires_grad_(requires_grad)


def k_order_product(g, p):
    """g @ p with each element summed in k order from zero, one torch.addcmul per k: ATen's addcmul
    computes self + t1·t2 as one fused multiply-add where the instruction set has FMA (a multiply, then
    an add, where it has not), which is the order and arithmetic of lorafa's CPU projection."""
    out = torch.zeros(g.shape[0], p.shape[1], dtype=g.dtype, device=g.device)
    for k in range(g.shape[1]):
        out = torch.addcmul(out, g[:, k : k + 1], p[k : k + 1, :])
    return out


class _KOrderGradientProducts(torch.overrides.TorchFunctionMode):
    """Inside PEFT's step, its `grad_B @ pinv` becomes k_order_product. A BLAS library chooses its own
    summation order per instruction set and shape (MKL's AVX2 and AVX-512 kernels differ), so a
    comparison of PEFT's product with any other can hold bit for bit only when the order is fixed.
    Every other operation of PEFT's step, A @ A.T included, runs as PEFT runs it."""

    def __init__(self, gradients):
        super().__init__()
        self.gradients = gradients

    def __torch_function__(self, func, types, args=(), kwargs=None):
        # `g @ p` arrives as Tensor.matmul; the others are its other spellings.
        matmuls = (torch.Tensor.matmul, torch.Tensor.__matmul__, torch.matmul)
        if func in matmuls and any(args[0] is g for g in self.gradients):
            return k_order_product(*args)
        return func(*args, **(kwargs or {}))


class PeftOptimizerRun:
    """PEFT's LoraFAOptimizer over clones of the given tensors, in create_lorafa_optimizer's group layout:
    one group with every parameter, its name and its layer's scaling (None for non-LoRA parameters).
    With k_order_products, PEFT's gradient products are summed in k order (_KOrderGradientProducts)."""

    def __init__(
        self, names, tensors, scaling_factors, lr, beta1, beta2, eps, weight_decay, correct_bias, k_order_products=False
    ):
        self.k_order_products = k_order_products
        self.names = list(names)
        # create_lorafa_optimizer freezes every parameter whose name contains "lora_A".
        self.params = [_clone(t, "lora_A" not in n) for n, t in zip(self.names, tensors)]
        group = {
            "params": self.params,
            "names": self.names,
            "scaling_factors": list(scaling_factors),
            "lr": lr,
            "betas": (beta1, beta2),
            "weight_decay": weight_decay,
        }
        self.optimizer = peft_lorafa.LoraFAOptimizer(
            [group], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, correct_bias=correct_bias
        )

    def step(self, grads):
        """grads[i] is the gradient of parameter i, or None. Raises whatever PEFT raises."""
        for param, grad in zip(self.params, grads):
            param.grad = None if grad is None else grad.detach().clone()
        if not self.k_order_products:
            self.optimizer.step()
            return
        b_gradients = [p.grad for n, p in zip(self.names, self.params) if "lora_B" in n and p.grad is not None]
        with _KOrderGradientProducts(b_gradients):
            self.optimizer.step()

    def tensor(self, index):
        return self.params[index]

    def pair_state(self, b_name):
        """(step, exp_avg_B, exp_avg_sq_B) of the pair whose B is b_name, under PEFT's module key."""
        state = self.optimizer.state[b_name[: b_name.find("lora")] + "lora"]
        return state["step"], state["exp_avg_B"], state["exp_avg_sq_B"]

    def param_state(self, name):
        state = self.optimizer.state[name]
        return state["step"], state["exp_avg"], state["exp_avg_sq"]


def state_bytes(optimizer):
    """Bytes held by an optimizer's state tensors (moments; step counters are Python ints)."""
    return sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))


class TorchAdamWRun:
    """torch.optim.AdamW over clones of the tensors, each with its gradient (for the benchmarks)."""

    def __init__(self, tensors, grads, lr):
        self.params = [_clone(t, True) for t in tensors]
        for param, grad in zip(self.params, grads):
            param.grad = grad.detach().clone()
        self.optimizer = torch.optim.AdamW(self.params, lr=lr)


class TinyNet(torch.nn.Module):
    """Embedding → mean over the sequence → Linear → ReLU → Linear; lorafa's C++ TinyNet mirrors it."""

    def __init__(self, vocab, dim, hidden, classes):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.fc1 = torch.nn.Linear(dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, classes)

    def forward(self, tokens):
        return self.fc2(torch.relu(self.fc1(self.emb(tokens).mean(dim=1))))


TINY_NET_SHAPE = {"vocab": 32, "dim": 16, "hidden": 24, "classes": 5}
LLAMA_SHAPE = {"vocab": 64, "hidden": 32, "intermediate": 48, "layers": 2, "heads": 2, "sequence": 8}


def _base_model(kind):
    if kind == "mlp":
        return TinyNet(**TINY_NET_SHAPE)
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=LLAMA_SHAPE["vocab"],
            hidden_size=LLAMA_SHAPE["hidden"],
            intermediate_size=LLAMA_SHAPE["intermediate"],
            num_hidden_layers=LLAMA_SHAPE["layers"],
            num_attention_heads=LLAMA_SHAPE["heads"],
            num_key_value_heads=LLAMA_SHAPE["heads"],
            max_position_embeddings=4 * LLAMA_SHAPE["sequence"],
        )
        return transformers.LlamaForCausalLM(config)  # randomly initialised: nothing is downloaded
    raise ValueError(f"unknown model kind {kind!r}")


class ModelRun:
    """A PEFT-wrapped model and a deep copy of it. PEFT's create_lorafa_optimizer trains the first; the
    copy's tensors are handed to lorafa (and, for "mlp", copied into lorafa's own C++ model)."""

    def __init__(self, kind, seed, dtype_name, lora_kwargs, lr, weight_decay, group_overrides):
        torch.manual_seed(seed)
        self.kind = kind
        self.generator = torch.Generator().manual_seed(seed + 1)
        model = _base_model(kind)
        self.peft_model = get_peft_model(model, LoraConfig(**lora_kwargs))
        with torch.no_grad():
            # PEFT starts embedding A at zero; frozen at zero, LoRA-FA could never move its B.
            for name, param in self.peft_model.named_parameters():
                if "lora_embedding_A" in name:
                    param.normal_(generator=self.generator)
        self.peft_model.to(getattr(torch, dtype_name))
        self.lorafa_model = copy.deepcopy(self.peft_model)
        r, alpha = lora_kwargs.get("r", 8), lora_kwargs.get("lora_alpha", 8)
        self.optimizer = peft_lorafa.create_lorafa_optimizer(self.peft_model, r, alpha, lr, weight_decay)
        for group in self.optimizer.param_groups:
            group.update(group_overrides)
        for name, param in self.lorafa_model.named_parameters():
            if "lora_A" in name or "lora_embedding_A" in name:
                param.requires_grad_(False)

    # --- what lorafa needs ---
    def lorafa_parameters(self):
        return list(self.lorafa_model.named_parameters())

    def scaling(self, module_path, adapter):
        return float(self.lorafa_model.get_submodule(module_path).scaling[adapter])

    def base_model_state(self):
        """The copy's parameters with PEFT's "base_model.model." prefix removed (lorafa's C++ names)."""
        prefix = "base_model.model."
        return {n[len(prefix):]: p.detach().clone() for n, p in self.lorafa_model.named_parameters()}

    def base_model_trainable(self):
        prefix = "base_model.model."
        return {n[len(prefix):]: p.requires_grad for n, p in self.lorafa_model.named_parameters()}

    def peft_parameters(self):
        prefix = "base_model.model."
        return {n[len(prefix):]: p.detach() for n, p in self.peft_model.named_parameters()}

    # --- data and losses ---
    def batch(self, size):
        if self.kind == "mlp":
            tokens = torch.randint(0, TINY_NET_SHAPE["vocab"], (size, 6), generator=self.generator)
            labels = torch.randint(0, TINY_NET_SHAPE["classes"], (size,), generator=self.generator)
            return tokens, labels
        tokens = torch.randint(0, LLAMA_SHAPE["vocab"], (size, LLAMA_SHAPE["sequence"]), generator=self.generator)
        return tokens, tokens

    def _loss(self, model, batch):
        tokens, labels = batch
        if self.kind == "mlp":
            return torch.nn.functional.cross_entropy(model(tokens).float(), labels)
        return model(input_ids=tokens, labels=labels).loss

    def _accumulate(self, model, batch, micro_batches):
        """loss/k backward for each of k micro-batches; returns the full batch's mean loss."""
        tokens, labels = batch
        total = 0.0
        for chunk_tokens, chunk_labels in zip(tokens.chunk(micro_batches), labels.chunk(micro_batches)):
            loss = self._loss(model, (chunk_tokens, chunk_labels)) / micro_batches
            loss.backward()
            total += loss.item()
        return total

    def peft_step(self, batch, micro_batches, use_closure):
        self.peft_model.zero_grad(set_to_none=True)
        if use_closure:
            return float(self.optimizer.step(lambda: self._closure_loss(self.peft_model, batch)))
        loss = self._accumulate(self.peft_model, batch, micro_batches)
        self.optimizer.step()
        return loss

    def lorafa_forward_backward(self, batch, micro_batches):
        self.lorafa_model.zero_grad(set_to_none=True)
        return self._accumulate(self.lorafa_model, batch, micro_batches)

    def lorafa_closure(self, batch):
        """A closure for lorafa's step(): zero grads, forward, backward, return the loss tensor."""
        return lambda: self._closure_loss(self.lorafa_model, batch)

    def _closure_loss(self, model, batch):
        # PEFT's step() is decorated with @torch.no_grad() and calls the closure inside it (torch's own
        # optimizers re-enable grad around the closure), so a closure that runs backward must turn grad
        # back on itself.
        with torch.enable_grad():
            model.zero_grad(set_to_none=True)
            loss = self._loss(model, batch)
            loss.backward()
        return loss.detach()
