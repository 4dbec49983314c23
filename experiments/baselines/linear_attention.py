"""Linear attention: a positive feature map replaces softmax, so attention becomes a running sum.

Katharopoulos, Vyas, Pappas, Fleuret, "Transformers are RNNs: Fast Autoregressive Transformers
with Linear Attention", 2020. Feature map elu(x) + 1; in place of the paper's normalising
denominator each head's output is RMS-normalised, which is more stable to train.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # The carried state is a long sum: keep it in float32 under bf16 autocast (float64 stays float64).
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
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(self.head_dim))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, H * D] -> [B, H, T, D]."""
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Positive features keep every score q.k >= 0, like softmax weights.
        q = F.elu(self._split_heads(self.q_proj(x))) + 1
        k = F.elu(self._split_heads(self.k_proj(x))) + 1
        v = self._split_heads(self.v_proj(x))
        # Without a denominator the state grows with time; scaling q keeps magnitudes modest.
        return _at_least_fp32(q) * self.head_dim**-0.5, _at_least_fp32(k), _at_least_fp32(v)

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-head RMS norm (stands in for the denominator), merge heads, project."""
        o = _at_least_fp32(o)  # under autocast the matmuls above return bf16
        o = o * torch.rsqrt(o.square().mean(dim=-1, keepdim=True) + 1e-5) * self.norm_weight
        b, _, n, _ = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(b, n, -1).to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Chunkwise: masked attention inside each chunk plus a state carried across chunks."""
        n = x.shape[1]
        size = min(self.chunk_size, x.shape[1])  # a short sequence is one chunk, not padded up to a full one
        q, k, v = (_chunk(t, size) for t in self._qkv(x))  # [B, H, N, C, D]
        causal = torch.ones(size, size, dtype=torch.bool, device=x.device).tril()
        # Within a chunk: plain causal (unnormalised) attention, all chunks in one batched matmul.
        intra = (q @ k.transpose(-1, -2)).masked_fill(~causal, 0) @ v
        # Across chunks: S = sum of k_s v_s^T over all earlier chunks.
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
        out = []
        for i in range(q.shape[2]):
            out.append(intra[:, :, i] + q[:, :, i] @ state)
            state = state + k[:, :, i].transpose(-1, -2) @ v[:, :, i]
        o = torch.cat(out, dim=2)[:, :, :n]
        return self._output(o, x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Token by token: S_t = S_{t-1} + k_t v_t^T, o_t = S_t^T q_t."""
        q, k, v = self._qkv(x)
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
        out = []
        for t in range(x.shape[1]):
            state = state + k[:, :, t, :, None] * v[:, :, t, None, :]
            out.append((q[:, :, t, :, None] * state).sum(dim=-2))
        return self._output(torch.stack(out, dim=2), x)
