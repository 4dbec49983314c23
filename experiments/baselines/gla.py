"""Gated Linear Attention (GLA): linear attention whose state decays by a data-dependent gate.

Yang, Wang, Shen, Panda, Kim, "Gated Linear Attention Transformers with Hardware-Efficient
Training", 2023. Each key dimension has its own forget gate alpha_t in (0, 1), made by a low-rank
projection of x: S_t = diag(alpha_t) S_{t-1} + k_t v_t^T. Per-head norm and a swish output gate.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # Gate products and the carried state stay float32 under bf16 autocast (float64 stays float64).
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _chunk(t: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, T, D] -> [B, H, N, size, D], zero-padding T at the end (causality keeps it harmless)."""
    t = F.pad(t, (0, 0, 0, -t.shape[2] % size))
    return t.reshape(t.shape[0], t.shape[1], -1, size, t.shape[-1])


class Mixer(nn.Module):
    gate_rank = 16  # the paper's low-rank size for the forget-gate projection
    gate_temperature = 16.0  # alpha = sigmoid(.)^(1/16) keeps alpha near 1, so memory fades slowly
    # chunk_size defaults to 16: the intra-chunk decay tensor is [B, H, T, C, D], linear in C.

    def __init__(self, d_model: int, num_heads: int = 4, chunk_size: int = 16, **kwargs) -> None:
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.chunk_size = chunk_size
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        # Low rank: a full d_model x d_model gate would cost as much as another projection.
        self.a_proj = nn.Sequential(
            nn.Linear(d_model, self.gate_rank, bias=False), nn.Linear(self.gate_rank, d_model)
        )
        self.g_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(self.head_dim))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, H * D] -> [B, H, T, D]."""
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _qkva(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v and log alpha (<= 0), all [B, H, T, D]."""
        q = self._split_heads(self.q_proj(x)) * self.head_dim**-0.5
        k = self._split_heads(self.k_proj(x))
        v = self._split_heads(self.v_proj(x))
        # log alpha in log space from the start: logsigmoid never underflows the way sigmoid().log() can.
        log_a = F.logsigmoid(_at_least_fp32(self._split_heads(self.a_proj(x)))) / self.gate_temperature
        return _at_least_fp32(q), _at_least_fp32(k), _at_least_fp32(v), log_a

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-head RMS norm, merge heads, swish gate, project."""
        o = _at_least_fp32(o)  # under autocast the matmuls above return bf16
        o = o * torch.rsqrt(o.square().mean(dim=-1, keepdim=True) + 1e-5) * self.norm_weight
        b, _, n, _ = o.shape
        o = o.transpose(1, 2).reshape(b, n, -1) * F.silu(self.g_proj(x))
        return self.o_proj(o.to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Chunkwise: gated attention inside each chunk plus a gated state carried across chunks."""
        n = x.shape[1]
        size = min(self.chunk_size, n)  # a short sequence is one chunk, not padded up to a full one
        # Padding log alpha with 0 means alpha = 1 there: padded steps change nothing.
        q, k, v, log_a = (_chunk(t, size) for t in self._qkva(x))  # [B, H, N, C, D]
        cum = log_a.cumsum(dim=-2)  # cum[t] = log of alpha_1 ... alpha_t within the chunk
        causal = torch.ones(size, size, dtype=torch.bool, device=x.device).tril()
        # Within a chunk, key s reaches query t >= s decayed by exp(cum[t] - cum[s]) per key dimension.
        # Masking the gap to -inf before exp keeps every exponent <= 0: no overflow, whatever the gates.
        gap = cum[..., :, None, :] - cum[..., None, :, :]  # [B, H, N, C, C, D]
        decay = gap.masked_fill(~causal[..., None], float("-inf")).exp()
        scores = (q[..., :, None, :] * k[..., None, :, :] * decay).sum(dim=-1)
        intra = scores @ v
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
        out = []
        for i in range(q.shape[2]):
            c = cum[:, :, i]
            last = c[:, :, -1:]  # decay over the whole chunk, [B, H, 1, D]
            out.append(intra[:, :, i] + (q[:, :, i] * c.exp()) @ state)
            k_to_end = k[:, :, i] * (last - c).exp()  # each key decayed to the end of the chunk
            state = last.exp().transpose(-1, -2) * state + k_to_end.transpose(-1, -2) @ v[:, :, i]
        o = torch.cat(out, dim=2)[:, :, :n]
        return self._output(o, x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Token by token: S_t = diag(alpha_t) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t."""
        q, k, v, log_a = self._qkva(x)
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
        out = []
        for t in range(x.shape[1]):
            alpha = log_a[:, :, t, :, None].exp()
            state = alpha * state + k[:, :, t, :, None] * v[:, :, t, None, :]
            out.append((q[:, :, t, :, None] * state).sum(dim=-2))
        return self._output(torch.stack(out, dim=2), x)
