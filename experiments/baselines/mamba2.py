"""Mamba2: a selective state-space mixer with a scalar data-dependent decay per head (SSD).

Dao, Gu, "Transformers are SSMs: Generalized Models and Efficient Algorithms Through Structured State
Space Duality", 2024. h_t = a_t h_{t-1} + dt_t B_t x_t^T, y_t = h_t^T C_t + D x_t, with
a_t = exp(-exp(A_log) dt_t); then a silu(z)-gated RMS norm. Here B and C are per head.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # Decays and the carried state stay float32 under bf16 (float64 stays float64).
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _chunk(t: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, T, D] -> [B, H, N, size, D], zero-padding T at the end."""
    t = F.pad(t, (0, 0, 0, -t.shape[2] % size))
    return t.reshape(t.shape[0], t.shape[1], -1, size, t.shape[-1])


class ShortConv(nn.Module):
    """Causal depthwise conv over the last few tokens, then SiLU: cheap local mixing before the
    state-space step, as in Mamba."""

    def __init__(self, dim: int, kernel_size: int = 4) -> None:
        super().__init__()
        bound = kernel_size**-0.5  # the same range nn.Conv1d's default init gives a depthwise kernel
        self.weight = nn.Parameter(torch.empty(kernel_size, dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, T, D]: y_t = sum_j w_j * x_{t-j}, as a few shifted multiply-adds (far
        cheaper than a depthwise conv kernel at this width, forward and backward)."""
        out = x * self.weight[0]
        for j in range(1, self.weight.shape[0]):
            out = out + F.pad(x, (0, 0, j, 0))[:, : x.shape[1]] * self.weight[j]
        return F.silu(out)


class Mixer(nn.Module):
    def __init__(
        self, d_model: int, num_heads: int = 4, chunk_size: int = 64, d_state: int | None = None, **kwargs
    ) -> None:
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.d_state = d_state or self.head_dim  # state per head: d_state x head_dim, as in DeltaNet
        self.chunk_size = chunk_size
        self.x_proj = nn.Linear(d_model, d_model, bias=False)
        self.b_proj = nn.Linear(d_model, num_heads * self.d_state, bias=False)
        self.c_proj = nn.Linear(d_model, num_heads * self.d_state, bias=False)
        self.z_proj = nn.Linear(d_model, d_model, bias=False)
        self.dt_proj = nn.Linear(d_model, num_heads, bias=False)  # one step size per head
        self.x_conv = ShortConv(d_model)
        self.b_conv = ShortConv(num_heads * self.d_state)
        self.c_conv = ShortConv(num_heads * self.d_state)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(self.head_dim))
        # A in [1, 16] and softplus(dt_bias) log-uniform in [1e-3, 0.1] start heads at a spread of
        # memory lengths; D is a per-head skip connection around the state.
        self.A_log = nn.Parameter(torch.empty(num_heads).uniform_(1, 16).log())
        dt = torch.empty(num_heads).uniform_(math.log(1e-3), math.log(0.1)).exp()
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus
        self.D = nn.Parameter(torch.ones(num_heads))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, H * D] -> [B, H, T, D]."""
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, -1).transpose(1, 2)

    def _xbcdt(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x as [B, H, T, P], B and C as [B, H, T, N], dt and log a (<= 0) as [B, H, T, 1]."""
        xh = _at_least_fp32(self._split_heads(self.x_conv(self.x_proj(x))))
        B = _at_least_fp32(self._split_heads(self.b_conv(self.b_proj(x))))
        C = _at_least_fp32(self._split_heads(self.c_conv(self.c_proj(x))))
        dt = F.softplus(_at_least_fp32(self._split_heads(self.dt_proj(x))) + self.dt_bias[:, None, None])
        log_a = -self.A_log.exp()[:, None, None] * dt  # stays in log space: no underflow to 0
        return xh, B, C, dt, log_a

    def _output(self, y: torch.Tensor, xh: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """D skip, silu(z) gate, per-head RMS norm, merge heads, project."""
        y = (y + self.D[:, None, None] * xh) * F.silu(_at_least_fp32(self._split_heads(self.z_proj(x))))
        y = y * torch.rsqrt(y.square().mean(dim=-1, keepdim=True) + 1e-5) * self.norm_weight
        b, _, n, _ = y.shape
        return self.o_proj(y.transpose(1, 2).reshape(b, n, -1).to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Chunkwise SSD: masked decayed attention inside each chunk, a decayed state across chunks."""
        n = x.shape[1]
        size = min(self.chunk_size, n)  # a short sequence is one chunk, not padded up to a full one
        xh, B, C, dt, log_a = self._xbcdt(x)
        # Padding dt with 0 gives a = 1 and no input there: padded steps change nothing.
        # Each becomes [batch, H, chunks, L, P or N or 1].
        xdt, B, C, log_a = (_chunk(t, size) for t in (xh * dt, B, C, log_a))
        # Autocast would run the matmuls below in bf16; the decays and the state need float32.
        with torch.autocast(x.device.type, enabled=False):
            cum = log_a.cumsum(dim=-2)  # cum[t] = log(a_1 ... a_t) within the chunk
            causal = torch.ones(size, size, dtype=torch.bool, device=x.device).tril()
            # The SSD "attention" form: C plays the query, B the key, dt * x the value, and step s
            # reaches t >= s decayed by exp(cum[t] - cum[s]). Masking s > t to -inf before exp keeps
            # every exponent <= 0: nothing overflows, whatever the decays.
            gap = cum - cum.transpose(-1, -2)  # [batch, H, chunks, L, L]
            scores = (C @ B.transpose(-1, -2)) * gap.masked_fill(~causal, float("-inf")).exp()
            intra = scores @ xdt
            C_decayed = C * cum.exp()  # the carried state has decayed by the time each step reads it
            last = cum[:, :, :, -1:]  # log decay over the whole chunk, [batch, H, chunks, 1, 1]
            B_to_end = B * (last - cum).exp()  # each input decayed to the end of its chunk
            h = C.new_zeros(C.shape[0], C.shape[1], C.shape[-1], xdt.shape[-1])
            out = []
            for i in range(C.shape[2]):
                out.append(intra[:, :, i] + C_decayed[:, :, i] @ h)
                h = last[:, :, i].exp() * h + B_to_end[:, :, i].transpose(-1, -2) @ xdt[:, :, i]
            y = torch.cat(out, dim=2)[:, :, :n]
        return self._output(y, xh, x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Token by token: h_t = a_t h_{t-1} + dt_t B_t x_t^T, y_t = h_t^T C_t (D skip added after)."""
        xh, B, C, dt, log_a = self._xbcdt(x)
        h = C.new_zeros(C.shape[0], C.shape[1], C.shape[-1], xh.shape[-1])
        out = []
        for t in range(x.shape[1]):
            write = B[:, :, t, :, None] * (dt[:, :, t, :, None] * xh[:, :, t, None, :])
            h = log_a[:, :, t, :, None].exp() * h + write
            out.append((C[:, :, t, :, None] * h).sum(dim=-2))
        return self._output(torch.stack(out, dim=2), xh, x)
