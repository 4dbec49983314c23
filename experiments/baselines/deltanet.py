"""DeltaNet: linear attention whose memory is edited by the delta rule instead of only added to.

Schlag, Irie, Schmidhuber, "Linear Transformers Are Secretly Fast Weight Programmers", 2021; trained
chunkwise as in Yang, Wang, Zhang, Shen, Kim, "Parallelizing Linear Transformers with the Delta Rule
over Sequence Length", 2024. u_t = beta_t (v_t - S_{t-1}^T k_t), S_t = S_{t-1} + k_t u_t^T, o_t = S_t^T q_t.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # The triangular solve and the carried state stay float32 under bf16 (float64 stays float64).
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _chunk(t: torch.Tensor, size: int) -> torch.Tensor:
    """[B, H, T, D] -> [B, H, N, size, D], zero-padding T at the end."""
    t = F.pad(t, (0, 0, 0, -t.shape[2] % size))
    return t.reshape(t.shape[0], t.shape[1], -1, size, t.shape[-1])


class ShortConv(nn.Module):
    """Causal depthwise conv over the last few tokens, then SiLU: cheap local mixing that lets a
    key see its neighbours, which the paper finds matters a lot for associative recall."""

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
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(self.head_dim))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, H * D] -> [B, H, T, D]."""
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, -1).transpose(1, 2)

    def _qkvb(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as [B, H, T, D] and beta as [B, H, T, 1]."""
        q = _at_least_fp32(self._split_heads(self.q_conv(self.q_proj(x))))
        k = _at_least_fp32(self._split_heads(self.k_conv(self.k_proj(x))))
        v = _at_least_fp32(self._split_heads(self.v_conv(self.v_proj(x))))
        beta = torch.sigmoid(_at_least_fp32(self._split_heads(self.beta_proj(x))))
        # Unit-norm keys make each write a true projection edit (eigenvalues of I - beta k k^T in
        # [0, 1]), so the state cannot blow up; q is normalised the same way for symmetry.
        return F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, beta

    def _output(self, o: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-head RMS norm, merge heads, project."""
        o = o * torch.rsqrt(o.square().mean(dim=-1, keepdim=True) + 1e-5) * self.norm_weight
        b, _, n, _ = o.shape
        return self.o_proj(o.transpose(1, 2).reshape(b, n, -1).to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Chunkwise (WY form): a triangular solve inside each chunk, a state carried across chunks."""
        n = x.shape[1]
        size = min(self.chunk_size, n)  # a short sequence is one chunk, not padded up to a full one
        # Padding k and beta with 0 makes padded steps write nothing: S stays as it was.
        q, k, v, beta = (_chunk(t, size) for t in self._qkvb(x))  # [B, H, N, C, D], beta [.., C, 1]
        # Autocast would run the matmuls below in bf16; the solve and the state need float32.
        with torch.autocast(x.device.type, enabled=False):
            # Unrolling the recurrence inside a chunk that starts from state S gives
            #   (I + A) U_eff = diag(beta) (V - K S),  A = strictly_lower(diag(beta) K K^T),
            # so U_eff = U - W S with [W | U] = (I + A)^{-1} diag(beta) [K | V], solved once per chunk.
            a = (beta * (k @ k.transpose(-1, -2))).tril(-1)
            eye = torch.eye(size, dtype=a.dtype, device=a.device)
            wu = torch.linalg.solve_triangular(
                eye + a, beta * torch.cat([k, v], dim=-1), upper=False, unitriangular=True
            )
            w, u = wu.split([k.shape[-1], v.shape[-1]], dim=-1)
            scores = (q @ k.transpose(-1, -2)).tril()  # diagonal included: o_t sees its own write
            state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
            out = []
            for i in range(q.shape[2]):
                u_eff = u[:, :, i] - w[:, :, i] @ state  # what the state does not already predict
                out.append(q[:, :, i] @ state + scores[:, :, i] @ u_eff)
                state = state + k[:, :, i].transpose(-1, -2) @ u_eff
            o = torch.cat(out, dim=2)[:, :, :n]
        return self._output(o, x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Token by token: u_t = beta_t (v_t - S_{t-1}^T k_t), S_t = S_{t-1} + k_t u_t^T, o_t = S_t^T q_t."""
        q, k, v, beta = self._qkvb(x)
        state = q.new_zeros(q.shape[0], q.shape[1], q.shape[-1], v.shape[-1])
        out = []
        for t in range(x.shape[1]):
            k_t = k[:, :, t, :, None]  # [B, H, D, 1]
            u = beta[:, :, t, :, None] * (v[:, :, t, None, :] - k_t.transpose(-1, -2) @ state)
            state = state + k_t * u
            out.append((q[:, :, t, :, None] * state).sum(dim=-2))
        return self._output(torch.stack(out, dim=2), x)
