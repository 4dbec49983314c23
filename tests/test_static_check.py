"""The static check: real candidates pass untouched, and each way of tampering is named at its line."""

from pathlib import Path
from textwrap import dedent

import pytest

from discover.experiments.baselines import builtin_baselines
from discover.experiments.contract import CONTRACT
from discover.vetting.static_check import ALLOWED_IMPORTS, ALLOWED_TORCH_MODULES, Violation, static_check

CANDIDATES = Path(__file__).parent / "candidates"
# Four lines, so a snippet's first own line is line 5.
HEADER = "import math\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def check(snippet: str) -> list[Violation]:
    return static_check(HEADER + dedent(snippet))


@pytest.mark.parametrize("path", sorted(builtin_baselines().values()), ids=lambda p: p.stem)
def test_baselines_are_clean(path):
    assert static_check(path.read_text()) == []


def test_weak_candidate_is_clean():
    assert static_check((CANDIDATES / "weak_short_conv.py").read_text()) == []


def test_syntax_error_is_one_violation_at_its_line():
    [violation] = static_check((CANDIDATES / "syntax_error.py").read_text())
    assert violation.line == 3
    assert "syntax error" in violation.message


def test_violation_reads_as_line_and_message():
    [violation] = static_check("import os\n")
    assert str(violation).startswith(
        "line 1: import of 'os' is not allowed; candidates may import only torch"
    )


REJECTED = {
    # name: (snippet after HEADER, line, text the message must contain)
    "import_os": ("import os\n", 5, "import of 'os'"),
    "from_subprocess": ("from subprocess import run\n", 5, "import of 'subprocess'"),
    "dunder_import": ("def f():\n    return __import__('os')\n", 6, "'__import__'"),
    "open": ("def f():\n    return open('/etc/passwd')\n", 6, "'open'"),
    "eval": ("def f():\n    return eval('1')\n", 6, "'eval'"),
    "exec_in_method": (
        """\
        class Mixer(nn.Module):
            def forward(self, x):
                exec("x = 0")
                return x
        """,
        7,
        "'exec'",
    ),
    "patch_full_path": (
        "def f(g):\n    torch.nn.functional.cross_entropy = g\n",
        6,
        "assignment to 'torch.nn.functional.cross_entropy'",
    ),
    "patch_alias": ("def f(g):\n    F.cross_entropy = g\n", 6, "'torch.nn.functional'"),
    "patch_class_method": ("def f(g):\n    torch.Tensor.argmax = g\n", 6, "'torch.Tensor.argmax'"),
    "patch_module_call": ("def f(g):\n    nn.Module.__call__ = g\n", 6, "'__call__'"),
    "patch_constant": ("def f():\n    math.pi += 1\n", 6, "'math.pi'"),
    "alias_by_assignment": ("def f(g):\n    T = torch.Tensor\n    T.sum = g\n", 7, "'torch.Tensor'"),
    "alias_through_self": (
        """\
        class Mixer(nn.Module):
            def __init__(self, d_model, num_heads=4, **kwargs):
                super().__init__()
                self.mods = [F]
            def forward(self, x):
                self.mods[0].silu = torch.relu
                return x
        """,
        10,
        "assignment to 'self.mods[0].silu'",
    ),
    "alias_through_helper": (
        "def pick():\n    return F\ndef f(g):\n    m = pick()\n    m.silu = g\n",
        9,
        "assignment to 'm.silu'",
    ),
    "alias_through_argument": (
        "def patch(m, g):\n    m.silu = g\ndef f(g):\n    patch(F, g)\n",
        6,
        "assignment to 'm.silu'",
    ),
    "alias_through_loop": ("def f(g):\n    for m in (F, torch):\n        m.silu = g\n", 7, "'m.silu'"),
    "delete_from_module": ("def f():\n    del torch.nn\n", 6, "deletion of 'torch.nn'"),
    "setattr_on_module": ("def f():\n    setattr(torch, 'x', 1)\n", 6, "'setattr' is allowed only on self"),
    "getattr_dunder": ("def f():\n    return getattr(torch, '__dict__')\n", 6, "'__dict__'"),
    "getattr_computed": ("def f(name):\n    return getattr(F, name)\n", 6, "string-literal"),
    "subclasses": (
        "def f(x):\n    return x.__class__.__bases__[0].__subclasses__()\n",
        6,
        "'__subclasses__'",
    ),
    "globals_attr": ("def f(g):\n    return g.__globals__\n", 6, "'__globals__'"),
    "torch_save": ("def f(x):\n    torch.save(x, 'x.pt')\n", 6, "'torch.save'"),
    "torch_load": ("def f():\n    return torch.load('x.pt')\n", 6, "'torch.load'"),
    "manual_seed": ("def f():\n    torch.manual_seed(0)\n", 6, "'torch.manual_seed'"),
    "set_default": ("def f():\n    torch.set_default_dtype(torch.float64)\n", 6, "'torch.set_default_dtype'"),
    "torch_compile": ("def f(m):\n    return torch.compile(m)\n", 6, "'torch.compile'"),
    "backends_flag": ("def f():\n    torch.backends.cudnn.benchmark = True\n", 6, "torch.backends"),
    "cpp_extension": ("import torch.utils.cpp_extension\n", 5, "torch.utils.cpp_extension"),
    "private_torch": ("def f():\n    return torch._C\n", 6, "'torch._C'"),
    "reexported_os": ("def f():\n    torch.os.system('ls')\n", 6, "'torch.os.system'"),
    "global_hook": (
        "def f(h):\n    nn.modules.module.register_module_forward_hook(h)\n",
        6,
        "register_module_forward_hook",
    ),
    "frame_walk": ("def f():\n    g = (i for i in [1])\n    return g.gi_frame.f_back\n", 7, "'gi_frame'"),
    "tensor_subclass": ("class Sneaky(torch.Tensor):\n    pass\n", 5, "subclassing 'torch.Tensor'"),
    "torch_function": (
        """\
        class Sneaky:
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                return 0
        """,
        7,
        "'__torch_function__'",
    ),
    "type_builtin": ("def f():\n    return type('E', (torch.Tensor,), {})\n", 6, "'type'"),
    "module_machinery": (
        """\
        class Mixer(nn.Module):
            def parameters(self, recurse=True):
                return iter([])
        """,
        6,
        "redefining 'parameters'",
    ),
    "top_level_call": ("print('hi')\n", 5, "top-level statement `print('hi')`"),
    "top_level_loop": ("for i in range(3):\n    pass\n", 5, "top-level statement `for i in range(3):`"),
    "top_level_main_block": ("if __name__ == '__main__':\n    pass\n", 5, "top-level statement `if __name__"),
    "import_time_tensor": ("W = torch.randn(3)\n", 5, "`torch.randn(...)` at import time"),
    "global_statement": ("X = 1\ndef f():\n    global X\n    X = 2\n", 7, "'global X'"),
    "star_import": ("from torch import *\n", 5, "'from torch import *'"),
}


@pytest.mark.parametrize(("snippet", "line", "text"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected(snippet, line, text):
    violations = check(snippet)
    assert any(v.line == line and text in v.message for v in violations), [str(v) for v in violations]


ACCEPTED = {
    "self_attributes": """\
        class Mixer(nn.Module):
            def __init__(self, d_model: int, num_heads: int = 4, **kwargs) -> None:
                super().__init__()
                self.proj = nn.Linear(d_model, d_model)
                self.scale = math.sqrt(d_model)
                self.dtype = torch.float32
                for i in range(2):
                    setattr(self, f"gate{i}", nn.Linear(d_model, d_model))
                self.act = getattr(F, "silu")

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                def inner(y: torch.Tensor) -> torch.Tensor:
                    return self.act(y) * self.scale

                out = x.new_zeros(x.shape, dtype=self.dtype)
                out[..., 0] = 1
                return inner(self.proj(x)) + getattr(self, "gate0")(x) + out
        """,
    "functional_usage": """\
        def attend(q, k, v):
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
            weights = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
            return torch.nn.functional.dropout(weights, 0.0) @ v
        """,
    "dataclass_and_typing": """\
        from dataclasses import dataclass, field
        from typing import Optional

        NEG_INF = float("-inf")
        LOG2 = math.log(2.0)


        @dataclass(frozen=True)
        class Settings:
            expand: int = 2
            sizes: list = field(default_factory=list)


        def maybe(x: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ...]:
            return () if x is None else (x,)
        """,
    "autograd_function": """\
        class Scale(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, s):
                ctx.s = s
                ctx.save_for_backward(x)
                return x * s

            @staticmethod
            def backward(ctx, grad):
                (x,) = ctx.saved_tensors
                return grad * ctx.s, None
        """,
    "shadowed_builtin_name": """\
        def forward(input):
            return input.sum()
        """,
    "helper_with_dtype": """\
        def cast(x, dtype):
            y = x.to(dtype)
            y[0] = 0
            return y


        def use(x):
            z = cast(x, torch.float32)
            z[..., 0] = 1
            return z
        """,
    "local_generator": """\
        def noise(n):
            gen = torch.Generator().manual_seed(0)
            return torch.randn(n, generator=gen)
        """,
}


@pytest.mark.parametrize("snippet", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted(snippet):
    assert check(snippet) == []


def test_alias_chains_too_long_to_follow_are_refused():
    # Each pass of the alias analysis resolves one link of this backwards chain.
    links = "".join(f"    a{i + 1} = a{i}\n" for i in reversed(range(40)))
    violations = check(f"def f():\n{links}    a0 = torch\n")
    assert any("chained too deeply" in v.message for v in violations)


def test_the_contract_names_every_import_the_static_check_allows():
    """What coders are told they may import is what the check lets through, no less."""
    for module in (*ALLOWED_IMPORTS, *ALLOWED_TORCH_MODULES):
        assert module in CONTRACT, module
