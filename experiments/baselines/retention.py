"""Multi-scale retention (RetNet): linear attention with a fixed exponential decay per head.

Sun, Dong, Huang, Ma, Xia, Xue, Wang, Wei, "Retentive Network: A Successor to Transformer for Large
Language Models", 2023. Head h forgets at rate gamma_h = 1 - 2^(-5 - h), so heads see different
time scales; the output goes through a per-head norm and a swish gate. xPos is left out for clarity.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # Decays and the carried state stay float32 under bf16 autocast (float64 stays float64).
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _chunk(t: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, T, D] -> [B, H, N, size, D], zero-padding T at the end (causality keeps it harmless)."""
    t = F.pad(t, (0, 0, 0, -t.shape[2] % size))
    return t.reshape(t.shape[0], t.shape[1], -1, size, t.shape[-1])


class Mixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int = 4, chunk_size: int = 64, **kwargs) -> None:
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.chunk_size = chunk_size
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.g_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(self.head_dim))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, H * D] -> [B, H, T, D]."""
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = self._split_heads(self.q_proj(x)) * self.head_dim**-0.5
        k = self._split_heads(self.k_proj(x))
        v = self._split_heads(self.v_proj(x))
        return _at_least_fp32(q), _at_least_fp32(k), _at_least_fp32(v)

    def _log_gamma(self, like: torch.Tensor) -> torch.Tensor:
        """log gamma_h as [H, 1, 1]; computed on the fly so it never gets rounded to bf16 with the model."""
        h = torch.arange(self.num_heads, dtype=like.dtype, device=like.device)
        return torch.log1p(-(2.0 ** (-5.0 - h))).view(-1, 1, 1)

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-head RMS norm, merge heads, swish gate, project."""
        o = _at_least_fp32(o)  # under autocast the matmuls above return bf16
        o = o * torch.rsqrt(o.square().mean(dim=-1, keepdim=True) + 1e-5) * self.norm_weight
        b, _, n, _ = o.shape
        o = o.transpose(1, 2).reshape(b, n, -1) * F.silu(self.g_proj(x))
        return self.o_proj(o.to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Chunkwise: decay-masked attention inside each chunk plus a decayed state across chunks."""
        n = x.shape[1]
        size = min(self.chunk_size, n)  # a short sequence is one chunk, not padded up to a full one
        q, k, v = (_chunk(t, size) for t in self._qkv(x))  # [B, H, N, C, D]
        log_gamma = self._log_gamma(q)
        pos = torch.arange(size, dtype=q.dtype, device=x.device)
        # D[t, s] = gamma^(t - s) for s <= t, else 0; clamping first keeps every exponent <= 0.
        gap = pos[:, None] - pos[None, :]
        decay = torch.exp(log_gamma * gap.clamp(min=0)) * (gap >= 0)  # [H, C, C]
        intra = ((q @ k.transpose(-1, -2)) * decay[:, None]) @ v
        q_decay = torch.exp(log_gamma * (pos[:, None] + 1))  # state at chunk start -> position t
        k_decay = torch.exp(log_gamma * (size - 1 - pos[:, None]))  # position s -> chunk end
        chunk_decay = torch.exp(log_gamma * size)  # whole chunk
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
        out = []
        for i in range(q.shape[2]):
            out.append(intra[:, :, i] + (q[:, :, i] * q_decay) @ state)
            state = chunk_decay * state + (k[:, :, i] * k_decay).transpose(-1, -2) @ v[:, :, i]
        o = torch.cat(out, dim=2)[:, :, :n]
        return self._output(o, x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Token by token: S_t = gamma S_{t-1} + k_t v_t^T, o_t = S_t^T q_t."""
        q, k, v = self._qkv(x)
        gamma = self._log_gamma(q).exp()
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
        out = []
        for t in range(x.shape[1]):
            state = gamma * state + k[:, :, t, :, None] * v[:, :, t, None, :]
            out.append((q[:, :, t, :, None] * state).sum(dim=-2))
        return self._output(torch.stack(out, dim=2), x)
