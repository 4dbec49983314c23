"""Causal multi-head softmax attention with rotary position embeddings (RoPE).

Attention: Vaswani et al., "Attention Is All You Need", 2017. RoPE: Su, Lu, Pan, Murtadha, Wen, Liu,
"RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021. Attention itself is
order-blind, so RoPE is the mixer's only position signal.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # Position math in bf16 would blur nearby angles; float64 stays float64 for exact tests.
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _rotary(t: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs (i, i + D/2) of t [B, H, T, D] by angle position * base^(-2i/D)."""
    n, d = t.shape[-2], t.shape[-1]
    inv_freq = base ** (-torch.arange(0, d, 2, device=t.device, dtype=torch.float32) / d)
    angles = torch.arange(n, device=t.device, dtype=torch.float32)[:, None] * inv_freq  # [T, D/2]
    cos, sin = angles.cos(), angles.sin()
    x = _at_least_fp32(t)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(t.dtype)


class Mixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int = 4, chunk_size: int = 64, **kwargs) -> None:
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        assert self.head_dim % 2 == 0, "rotary embeddings need an even head_dim"
        self.chunk_size = chunk_size  # unused: softmax attention has no chunkwise form here
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, H * D] -> [B, H, T, D]."""
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = _rotary(self._split_heads(self.q_proj(x)))
        k = _rotary(self._split_heads(self.k_proj(x)))
        v = self._split_heads(self.v_proj(x))
        return q, k, v

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Merge heads [B, H, T, D] -> [B, T, H * D] and project."""
        b, _, n, _ = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(b, n, -1).to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        # The fused kernel (flash / memory-efficient on GPU) never materialises the T x T scores.
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self._output(o, x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        n = x.shape[1]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        return self._output(weights @ v, x)
