"""The LoRA-FA step in float64, written out plainly for the Python tests (the C++ float64 reference in
reference/ states the same maths): ĝ = g_B (A Aᵀ + δI)⁺ / s², then HF-AdamW; other parameters HF-AdamW."""

import math

import torch


class Float64LoraFA:
    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, delta=1e-8):
        self.lr, (self.beta1, self.beta2), self.eps, self.weight_decay, self.delta = lr, betas, eps, weight_decay, delta
        self.state = {}

    def project(self, A, grad_B, scaling):
        A = A.double().reshape(A.shape[0], -1)
        gram = A @ A.T + self.delta * torch.eye(A.shape[0], dtype=torch.float64)
        return grad_B.double().reshape(grad_B.shape[0], -1) @ torch.linalg.pinv(gram) / scaling**2

    def update(self, key, value, grad):
        """HF-AdamW: bias-corrected step size, then decay of the updated value. Returns the new value."""
        m, v, t = self.state.get(key, (torch.zeros_like(value), torch.zeros_like(value), 0))
        t += 1
        m = self.beta1 * m + (1 - self.beta1) * grad
        v = self.beta2 * v + (1 - self.beta2) * grad * grad
        step_size = self.lr * math.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        value = value - step_size * m / (v.sqrt() + self.eps)
        value = value - self.lr * self.weight_decay * value
        self.state[key] = (m, v, t)
        return value
