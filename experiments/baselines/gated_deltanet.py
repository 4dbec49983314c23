"""Gated DeltaNet: the delta rule plus a Mamba2-style scalar decay per head, and a swish output gate.

Yang, Kautz, Hatamizadeh, "Gated Delta Networks: Improving Mamba2 with Delta Rule", 2024. The decay
alpha_t in (0, 1) lets the memory forget wholesale, the delta rule lets it overwrite one key at a time:
u_t = beta_t (v_t - alpha_t S_{t-1}^T k_t), S_t = alpha_t S_{t-1} + k_t u_t^T, o_t = S_t^T q_t.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # Decays, the triangular solve and the carried state stay float32 under bf16 (float64 stays float64).
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _chunk(t: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, T, D] -> [B, H, N, size, D], zero-padding T at the end."""
    t = F.pad(t, (0, 0, 0, -t.shape[2] % size))
    return t.reshape(t.shape[0], t.shape[1], -1, size, t.shape[-1])


class ShortConv(nn.Module):
    """Causal depthwise conv over the last few tokens, then SiLU: cheap local mixing that lets a
    key see its neighbours, which the DeltaNet papers find matters a lot for associative recall."""

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
    def __init__(self, d_model: int, num_heads: int = 4, chunk_size: int = 64, **kwargs) -> None:
        super().__init__()
        assert d_model % num_heads == 0, "d_model must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.chunk_size = chunk_size
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.q_conv = ShortConv(d_model)
        self.k_conv = ShortConv(d_model)
        self.v_conv = ShortConv(d_model)
        self.beta_proj = nn.Linear(d_model, num_heads, bias=False)  # one write strength per head
        self.a_proj = nn.Linear(d_model, num_heads, bias=False)  # one decay rate per head
        self.g_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(self.head_dim))
        # Mamba2-style decay: log alpha = -exp(A_log) * softplus(a_proj(x) + dt_bias). A in [1, 16]
        # and softplus(dt_bias) log-uniform in [1e-3, 0.1] start heads at a spread of memory lengths.
        self.A_log = nn.Parameter(torch.empty(num_heads).uniform_(1, 16).log())
        dt = torch.empty(num_heads).uniform_(math.log(1e-3), math.log(0.1)).exp()
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, H * D] -> [B, H, T, D]."""
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, -1).transpose(1, 2)

    def _qkvba(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k, v as [B, H, T, D]; beta and log alpha (<= 0) as [B, H, T, 1]."""
        q = _at_least_fp32(self._split_heads(self.q_conv(self.q_proj(x))))
        k = _at_least_fp32(self._split_heads(self.k_conv(self.k_proj(x))))
        v = _at_least_fp32(self._split_heads(self.v_conv(self.v_proj(x))))
        beta = torch.sigmoid(_at_least_fp32(self._split_heads(self.beta_proj(x))))
        rate = F.softplus(_at_least_fp32(self._split_heads(self.a_proj(x))) + self.dt_bias[:, None, None])
        log_a = -self.A_log.exp()[:, None, None] * rate  # stays in log space: no underflow to 0
        # Unit-norm keys keep each delta-rule write a contraction, so the state cannot blow up.
        return F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, beta, log_a

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-head RMS norm, merge heads, swish gate, project."""
        o = o * torch.rsqrt(o.square().mean(dim=-1, keepdim=True) + 1e-5) * self.norm_weight
        b, _, n, _ = o.shape
        o = o.transpose(1, 2).reshape(b, n, -1) * F.silu(self.g_proj(x))
        return self.o_proj(o.to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Chunkwise (WY form with decay): a triangular solve per chunk, a decayed state across chunks."""
        n = x.shape[1]
        size = min(self.chunk_size, n)  # a short sequence is one chunk, not padded up to a full one
        # Padding with 0 gives k = 0, beta = 0 and alpha = 1 there: padded steps change nothing.
        q, k, v, beta, log_a = (_chunk(t, size) for t in self._qkvba(x))  # [B, H, N, C, D or 1]
        # Autocast would run the matmuls below in bf16; the solve and the state need float32.
        with torch.autocast(x.device.type, enabled=False):
            cum = log_a.cumsum(dim=-2)  # cum[t] = log(alpha_1 ... alpha_t) within the chunk
            causal = torch.ones(size, size, dtype=torch.bool, device=x.device).tril()
            # gamma[t, s] = exp(cum[t] - cum[s]) is the decay from step s to t. Masking s > t to -inf
            # before exp keeps every exponent <= 0: nothing overflows, whatever the decays.
            gap = cum - cum.transpose(-1, -2)  # [B, H, N, C, C]
            gamma = gap.masked_fill(~causal, float("-inf")).exp()
            # Inside a chunk starting from state S the recurrence unrolls to
            #   (I + A) U_eff = diag(beta) (V - diag(exp(cum)) K S),
            #   A = strictly_lower(diag(beta) (K K^T * gamma)),
            # so U_eff = U - W S with [W | U] = (I + A)^{-1} diag(beta) [diag(exp(cum)) K | V].
            a = (beta * (k @ k.transpose(-1, -2)) * gamma).tril(-1)
            eye = torch.eye(size, dtype=a.dtype, device=a.device)
            rhs = beta * torch.cat([k * cum.exp(), v], dim=-1)
            wu = torch.linalg.solve_triangular(eye + a, rhs, upper=False, unitriangular=True)
            w, u = wu.split([k.shape[-1], v.shape[-1]], dim=-1)
            scores = (q @ k.transpose(-1, -2)) * gamma  # zero above the diagonal already
            q_decayed = q * cum.exp()  # the carried state has decayed by the time each query reads it
            last = cum[:, :, :, -1:]  # log decay over the whole chunk, [B, H, N, 1, 1]
            k_to_end = k * (last - cum).exp()  # each write decayed to the end of its chunk
            state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
            out = []
            for i in range(q.shape[2]):
                u_eff = u[:, :, i] - w[:, :, i] @ state  # what the decayed state does not already predict
                out.append(q_decayed[:, :, i] @ state + scores[:, :, i] @ u_eff)
                state = last[:, :, i].exp() * state + k_to_end[:, :, i].transpose(-1, -2) @ u_eff
            o = torch.cat(out, dim=2)[:, :, :n]
        return self._output(o, x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Token by token: u_t = beta_t (v_t - alpha_t S_{t-1}^T k_t), S_t = alpha_t S_{t-1} + k_t u_t^T."""
        q, k, v, beta, log_a = self._qkvba(x)
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
        out = []
        for t in range(x.shape[1]):
            k_t = k[:, :, t, :, None]  # [B, H, D, 1]
            state = log_a[:, :, t, :, None].exp() * state  # decay first: the write sees alpha_t S_{t-1}
            u = beta[:, :, t, :, None] * (v[:, :, t, None, :] - k_t.transpose(-1, -2) @ state)
            state = state + k_t * u
            out.append((q[:, :, t, :, None] * state).sum(dim=-2))
        return self._output(torch.stack(out, dim=2), x)
