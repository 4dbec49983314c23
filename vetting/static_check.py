"""Static check of a candidate file: refuse code that could tamper with the harness, before it runs.

The harness imports a candidate into the very process that trains and scores it, so a file that
patches torch, reads files or reaches interpreter internals could report any score it likes. The
sandbox limits what such a file can reach outside the process; this check reads the source as a
syntax tree, without executing anything, and refuses the file before it is ever imported. It is a
first line, not a proof (the runtime `integrity` guard is another), and where in doubt it rejects.

Rules, and why:

- Imports: only ALLOWED_IMPORTS; no relative or `*` imports. Everything else (os, sys, importlib,
  ctypes, pickle, numpy, discover, ...) reaches files, processes, the network or the interpreter.
- Torch: FORBIDDEN_TORCH_MODULES (torch.hub, torch.backends, torch.distributed, ...) may not be named
  at all, nor FORBIDDEN_TORCH_NAMES (torch.save, torch.manual_seed, torch.set_*, ...): they load code,
  touch files or change process-wide state that the harness owns. Private names (`torch._C`) of any
  imported module are refused too: they sit behind the public API this check knows. Names are also
  followed through the real modules, because modules re-export what they import (`torch.os`, `F.np`).
- Builtins: FORBIDDEN_BUILTINS (exec, eval, open, __import__, type, ...) run unseen code, open files
  or expose namespaces and classes. `getattr` needs a literal name (or `self` as the object) and
  `setattr`/`delattr` work only on `self`: a computed name on any other object could be anything.
- Dunders: attributes, names and string literals such as `__subclasses__`, `__globals__` or `__dict__`
  are the classic ways out of any Python sandbox; only `__init__` and `__name__` are used. A class
  defines only ALLOWED_DUNDER_METHODS: a `__torch_function__` on an object the mixer returns would
  rewrite every torch call the harness later makes on it. FORBIDDEN_ATTRIBUTES adds the non-dunder
  ways to frames, files and raw memory (`gi_frame`, `f_back`, `save`, `numpy`, ...).
- Classes: no subclass of torch.Tensor or Parameter (same reason as `__torch_function__`), no
  metaclass, no functional Enum API (it builds a class from a mapping), bases are named classes, and
  no redefinition of torch.nn.Module's own machinery (`parameters`, `to`, `train`, ...), which the
  harness relies on to count, move and train the model.
- Module state: nothing is assigned to, deleted from or mutated through an imported module or
  anything reached through one (`torch.x = 1`, `F.cross_entropy = f`, `T = torch.Tensor; T.sum = f`,
  `self.m = torch; self.m.x = 1`): that would change the torch the harness uses. `self.*` and local
  objects are fine. Aliases are tracked through assignments, containers, loops, calls and returns.
- No `global` statement: a candidate has no use for one, and it rebinds names behind the check.
- Import time: module level holds only imports, constants, functions, classes and docstrings (and an
  `if TYPE_CHECKING:` block of imports); module- and class-level values call only IMPORT_TIME_CALLS.
  A candidate does nothing until the harness builds it.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
import types
from collections.abc import Iterable

import torch
from pydantic import BaseModel, ConfigDict


def _by_name(groups: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """{reason: names} -> {name: reason}: rules read best grouped by why."""
    return {name: why for why, names in groups.items() for name in names}


ALLOWED_IMPORTS = ("torch", "math", "typing", "functools", "dataclasses", "collections", "itertools")
ALLOWED_IMPORTS += ("operator", "numbers", "enum", "abc", "__future__", "einops")
FORBIDDEN_TORCH_MODULES = _by_name({
    "it downloads or loads code": ("torch.hub", "torch.ops", "torch.classes", "torch.package"),
    "it holds file, process and code-generation tools": ("torch.utils",),
    "it intercepts or registers operators process-wide": ("torch.overrides", "torch.library"),
    "it reaches other processes or the network": ("torch.distributed", "torch.multiprocessing"),
    "it sets process-wide state the harness relies on": ("torch.backends", "torch.compiler"),
    "random state belongs to the harness": ("torch.random",),
    "it generates and runs Python code": ("torch.fx",),
    "it reads or writes files": ("torch.serialization", "torch.onnx", "torch.export"),
    "it writes files and hooks every operator": ("torch.profiler", "torch.autograd.profiler"),
})  # fmt: skip
ALLOWED_TORCH_MODULES = ("torch.utils.checkpoint",)  # gradient checkpointing is plain compute
FORBIDDEN_TORCH_NAMES = _by_name({
    "random state belongs to the harness": ("seed", "manual_seed", "manual_seed_all"),
    "it changes process-wide state the harness relies on": ("use_deterministic_algorithms", "compile"),
    "it loads a native library": ("CUDAPluggableAllocator", "change_current_allocator"),
})  # fmt: skip
FORBIDDEN_TORCH_PREFIXES = {
    "set_": "it changes process-wide state the harness relies on",
    "reset_": "it resets measurements the harness takes",
    "register_module_": "it hooks every module, the harness's own included",
}
FORBIDDEN_BUILTINS = _by_name({
    "it runs code this check cannot see": ("__import__", "exec", "eval", "compile", "breakpoint"),
    "it reads files or input": ("open", "input", "help", "license", "credits", "copyright"),
    "it exposes namespaces or raw memory": ("globals", "locals", "vars", "memoryview"),
    "it exposes and creates classes; use isinstance()": ("type",),
    "it ends the interpreter": ("exit", "quit"),
})  # fmt: skip
FORBIDDEN_ATTRIBUTES = _by_name({
    "it reaches frames, code or classes this check cannot follow": (
        "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_back", "f_globals",
        "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next", "mro", "obj",
    ),
    "it reads or writes files or loads code": (
        "save", "load", "tofile", "dump", "from_file", "load_library", "load_inline",
    ),
    # Modules re-export what they import (`torch.os`, `F.np`): these names are never mixer business.
    "it is a module outside the allowed imports": (
        "os", "sys", "subprocess", "builtins", "importlib", "inspect", "pickle", "shutil", "socket",
        "platform", "gc", "types", "io", "pathlib", "threading", "multiprocessing", "signal", "glob",
        "np", "warnings", "textwrap",
    ),
    "it leaves torch for raw memory": ("numpy", "ctypes"),
    "it builds or exposes classes behind the class rules": (
        "ABCMeta", "EnumMeta", "EnumType", "make_dataclass", "get_origin",
    ),
    "it writes arbitrary attributes or items": (
        "update_wrapper", "update_abstractmethods", "attrgetter", "methodcaller", "setitem", "delitem",
    ),
})  # fmt: skip
DECORATOR_ONLY = ("dataclass", "total_ordering", "wraps")  # called on anything, they write attributes
ALLOWED_DUNDER_ATTRIBUTES = ("__init__", "__name__")  # super().__init__(...), fn.__name__
ALLOWED_DUNDER_METHODS = ("__init__", "__post_init__", "__repr__")
ALLOWED_DUNDER_NAMES = (*ALLOWED_DUNDER_METHODS, "__name__", "__all__", "__slots__", "__main__")
TENSOR_CLASSES = ("Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer")
# What nn.Module itself defines (parameters, to, train, ...), which a candidate may not redefine.
MODULE_MACHINERY = {n for n in dir(torch.nn.Module) if not n.startswith("__")} - {"forward", "extra_repr"}
IMPORT_TIME_BUILTINS = ("float", "int", "bool", "complex", "str", "tuple", "frozenset", "range", "len")
IMPORT_TIME_BUILTINS += ("min", "max", "abs", "round", "pow", "sum")
IMPORT_TIME_CALLS = ("math.", "typing.", "functools.partial", "collections.namedtuple", "dataclasses.field")
IMPORT_TIME_CALLS += ("enum.auto", "torch.finfo", "torch.iinfo")
CONTAINER_MUTATORS = ("append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear")
CONTAINER_MUTATORS += ("remove", "discard")
CONTAINER_GETTERS = ("pop", "get", "setdefault", "popitem", "values", "items", "copy")
MAX_ALIAS_PASSES = 20  # real files settle in a few; only contrived alias chains need more
FRESH_VALUE_MODULES = ("torch", "math", "einops")  # their calls build new tensors and numbers
# Module members that are plain values (dtypes, layouts, numbers): passing them around is harmless.
LEAF_VALUES = frozenset(
    {f"torch.{n}" for n, v in vars(torch).items() if isinstance(v, torch.dtype | torch.layout)}
    | {f"torch.{n}" for n, v in vars(torch).items() if isinstance(v, torch.memory_format)}
    | {f"{m}.{n}" for m in ("math", "torch") for n in ("pi", "e", "tau", "inf", "nan")}
)
_DUNDER = re.compile(r"__\w+__")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp)
_SCOPES += (ast.DictComp, ast.GeneratorExp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


class Violation(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def static_check(source: str) -> list[Violation]:
    """Every rule the candidate source breaks, in line order; an empty list means clean."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [Violation(line=exc.lineno or 1, message=f"syntax error: {exc.msg}")]
    except (ValueError, RecursionError, MemoryError) as exc:
        return [Violation(line=1, message=f"cannot parse: {type(exc).__name__}")]
    try:
        checker = _Checker(tree)
        checker.visit(tree)
    except RecursionError:
        return [Violation(line=1, message="code is nested too deeply to check")]
    return sorted(set(checker.violations), key=lambda v: (v.line, v.message))


def _is_dunder(name: str) -> bool:
    return bool(_DUNDER.fullmatch(name))


def _params(args: ast.arguments) -> list[ast.arg]:
    every = [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]
    return [a for a in every if a is not None]


def _literal_name(call: ast.Call) -> str | None:
    """The attribute name of `getattr(obj, "name", ...)`, when it is a string literal."""
    if len(call.args) >= 2 and isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str):
        return call.args[1].value
    return None


def _is_call_to(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _dotted_problem(dotted: str) -> str | None:
    """Why a resolved name such as `torch.backends.cudnn.benchmark` may not be used, or None."""
    parts = dotted.split(".")
    for i in range(2, len(parts) + 1):
        if why := _name_problem(parts[:i], dotted):
            name = ".".join(parts[:i])
            return (
                f"'{dotted}' is not allowed" + (f" (part of '{name}')" if name != dotted else "") + f": {why}"
            )
    return _module_problem(parts)


def _name_problem(parts: list[str], full: str) -> str | None:
    """Why the last of `parts`, a prefix of the name `full`, may not be used, judging by names alone."""
    name, part = ".".join(parts), parts[-1]
    if _is_dunder(part) and part not in ALLOWED_DUNDER_ATTRIBUTES:
        return "dunder names reach interpreter internals"
    if part.startswith("_") and not _is_dunder(part):
        return "private names sit behind the public API this check knows"
    if part in FORBIDDEN_ATTRIBUTES:
        return FORBIDDEN_ATTRIBUTES[part]
    if parts[0] != "torch":
        return None
    allowed = any(full == m or full.startswith(m + ".") for m in ALLOWED_TORCH_MODULES)
    if name in FORBIDDEN_TORCH_MODULES and not allowed:
        return FORBIDDEN_TORCH_MODULES[name]
    why = FORBIDDEN_TORCH_NAMES.get(part)
    return why or next((w for p, w in FORBIDDEN_TORCH_PREFIXES.items() if part.startswith(p)), None)


def _module_problem(parts: list[str]) -> str | None:
    """Follow a name through the real modules, which re-export what they import (`torch.os`)."""
    if parts[0] not in ALLOWED_IMPORTS:
        return None  # never import a module the candidate names unless it is on the allowlist
    try:
        module = importlib.import_module(parts[0])
    except ImportError:
        return None
    depth = 1
    # vars(), not getattr(): a lookup must not trigger a module's lazy imports.
    while depth < len(parts) and isinstance(found := vars(module).get(parts[depth]), types.ModuleType):
        module, depth = found, depth + 1
    real = module.__name__.split(".")
    why = "it is outside the allowed imports" if real[0] not in ALLOWED_IMPORTS else None
    for j in range(2, len(real) + 1):
        why = why or _name_problem(real[:j], module.__name__)
    if why:
        return f"'{'.'.join(parts[:depth])}' is not allowed: it is the module '{module.__name__}', and {why}"
    return None


def _binding(node: ast.AST) -> str | None:
    """The name this node binds in its scope, if it binds one."""
    match node:
        case ast.Name(ctx=ast.Store() | ast.Del()):
            return node.id
        case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef():
            return node.name
        case ast.ExceptHandler(name=str()) | ast.MatchAs(name=str()) | ast.MatchStar(name=str()):
            return node.name
        case ast.MatchMapping(rest=str()):
            return node.rest
        case ast.alias():
            return (node.asname or node.name).split(".")[0]
        case ast.arg():
            return node.arg
    return None


def _bound_names(nodes: Iterable[ast.AST]) -> set[str]:
    """Names bound directly in one scope (nested functions, classes and comprehensions excluded)."""
    names: set[str] = set()
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Nonlocal):
            names.update(node.names)
        elif (name := _binding(node)) and not isinstance(node, ast.arg):
            names.add(name)
        if not isinstance(node, _SCOPES):
            todo.extend(ast.iter_child_nodes(node))
    return names


class _Aliases:
    """Which names and attributes may hold an imported module, or something reached through one.

    Deliberately flow- and scope-insensitive: a key tainted anywhere is tainted everywhere, which can
    only make the check stricter. Keys are `name`, `.attr` (that attribute of any object) and either
    of those plus `[]` (the items of a container kept there). Runs to a fixpoint over the file.
    """

    def __init__(self, tree: ast.Module) -> None:
        self.tainted: set[str] = set()
        self.origin: dict[str, str] = {}  # alias -> dotted name, e.g. F -> torch.nn.functional
        self.returning: set[str] = set()  # local functions whose result may be module-derived
        self.raises = False  # some exception carries a module-derived value
        self.functions: dict[str, list[ast.arguments]] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        binders: dict[str, set[str]] = {}  # name -> what binds it: import origins, or binding sites
        for node in ast.walk(tree):
            if isinstance(node, _FUNCTIONS):
                self.functions.setdefault(node.name, []).append(node.args)
            if isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
            if name := _binding(node):
                way = (node.name if node.asname else name) if isinstance(node, ast.alias) else id(node)
                binders.setdefault(name, set()).add(str(way))
        # A name bound in one way only can be resolved to what it names; others stay unresolved.
        self.ambiguous = {name for name, ways in binders.items() if len(ways) > 1}
        self.converged = False  # a file that needs more passes is refused, not half-checked
        for _ in range(MAX_ALIAS_PASSES):
            size = (len(self.tainted), len(self.origin), len(self.returning), self.raises)
            for node in ast.walk(tree):
                self._learn(node)
            if size == (len(self.tainted), len(self.origin), len(self.returning), self.raises):
                self.converged = True
                break

    # -- reading expressions

    def steps(self, node: ast.AST) -> list[str] | None:
        """Keys along a chain such as `self.mods[0].x`; None when it passes through a call."""
        match node:
            case ast.Name():
                return [node.id]
            case ast.Attribute():
                base = self.steps(node.value)
                return None if base is None else [*base, "." + node.attr]
            case ast.Subscript():
                base = self.steps(node.value)
                return None if base is None else [*base, base[-1] + "[]"]
            case ast.Call() if _is_call_to(node, "getattr") and _literal_name(node) is not None:
                base = self.steps(node.args[0])
                return None if base is None else [*base, "." + _literal_name(node)]
        return None

    def dotted(self, node: ast.AST) -> str | None:
        """`F.cross_entropy` -> `torch.nn.functional.cross_entropy`, when the root is a known alias."""
        match node:
            case ast.Name():
                return self.origin.get(node.id)
            case ast.Attribute():
                base = self.dotted(node.value)
                return None if base is None else f"{base}.{node.attr}"
            case ast.Call() if _is_call_to(node, "getattr") and _literal_name(node) is not None:
                base = self.dotted(node.args[0])
                return None if base is None else f"{base}.{_literal_name(node)}"
        return None

    def derived(self, node: ast.AST | None) -> bool:
        """May this expression evaluate to a module, or to something reached through one?"""
        match node:
            case ast.Name() | ast.Attribute() | ast.Subscript():
                steps = self.steps(node)
                if steps is None or self.dotted(node) in LEAF_VALUES:
                    return steps is None and self.derived(node.value)
                return any(key in self.tainted for key in steps)
            case ast.IfExp():
                return self.derived(node.body) or self.derived(node.orelse)
            case ast.BoolOp():
                return any(self.derived(v) for v in node.values)
            case ast.NamedExpr() | ast.Starred() | ast.Await():
                return self.derived(node.value)
            case ast.Call():
                return self._call_taints(node)
        return False

    def holds(self, node: ast.AST | None) -> bool:
        """May this expression be a container with module-derived items?"""
        match node:
            case ast.Tuple() | ast.List() | ast.Set():
                return any(self.derived(e) or self.holds(e) for e in node.elts)
            case ast.Dict():
                return any(self.derived(v) or self.holds(v) for v in node.values)
            case ast.ListComp() | ast.SetComp() | ast.GeneratorExp():
                return self.derived(node.elt) or self.holds(node.elt)
            case ast.DictComp():
                return self.derived(node.value) or self.holds(node.value)
            case ast.Name() | ast.Attribute() | ast.Subscript():
                steps = self.steps(node)
                return self.derived(node) or (steps is not None and steps[-1] + "[]" in self.tainted)
            case ast.IfExp():
                return self.holds(node.body) or self.holds(node.orelse)
            case ast.BoolOp():
                return any(self.holds(v) for v in node.values)
            case ast.NamedExpr() | ast.Starred() | ast.Await():
                return self.holds(node.value)
            case ast.Call():
                return self._call_taints(node)
        return False

    def tainting(self, node: ast.AST | None) -> bool:
        return self.derived(node) or self.holds(node)

    def _call_taints(self, call: ast.Call) -> bool:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name in self.returning or (isinstance(func, ast.Lambda) and self.tainting(func.body)):
            return True
        if isinstance(func, ast.Attribute) and func.attr in CONTAINER_GETTERS and self.holds(func.value):
            return True
        args = [*call.args, *(k.value for k in call.keywords)]
        if not any(self.tainting(a) for a in args):
            return False
        # Local functions and classes are followed through their parameters instead.
        if name in self.functions or name in self.classes:
            return False
        root = (self.dotted(func) or "").split(".")[0]
        return root not in FRESH_VALUE_MODULES and not (
            isinstance(func, ast.Name) and func.id in ("len", "isinstance", "hasattr", "print", "id")
        )

    # -- learning from statements

    def _learn(self, node: ast.AST) -> None:
        match node:
            case ast.Import():
                for alias in node.names:
                    name = alias.asname or alias.name.split(".")[0]
                    self.origin.setdefault(name, alias.name if alias.asname else name)
                    self.tainted.add(name)
            case ast.ImportFrom(module=str(), level=0):
                for alias in node.names:
                    name = alias.asname or alias.name
                    self.origin.setdefault(name, f"{node.module}.{alias.name}")
                    self.tainted.add(name)
            case ast.Assign():
                for target in node.targets:
                    self._bind(target, node.value)
            case ast.AnnAssign(value=ast.expr()) | ast.AugAssign() | ast.NamedExpr():
                self._bind(node.target, node.value)
            case ast.For() | ast.AsyncFor() | ast.comprehension():
                if self.tainting(node.iter):
                    self._taint_all(node.target)
            case ast.withitem(optional_vars=ast.expr()):
                if self.tainting(node.context_expr):
                    self._taint_all(node.optional_vars)
            case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.Lambda():
                self._learn_function(node)
            case ast.ClassDef():
                for stmt in node.body:  # class attributes are read as `Cls.x` or `self.x`
                    if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                        for target in targets:
                            if isinstance(target, ast.Name):
                                self._bind_key("." + target.id, stmt.value)
            case ast.Call():
                self._learn_call(node)
            case ast.Raise(exc=ast.expr()):
                exc = node.exc
                args = exc.args if isinstance(exc, ast.Call) else [exc]
                self.raises = self.raises or any(self.tainting(a) for a in args)
            case ast.ExceptHandler(name=str()) if self.raises or self.returning:
                self._taint_key(node.name)

    def _learn_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults = zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
        for param, default in [*defaults, *zip(args.kwonlyargs, args.kw_defaults, strict=True)]:
            if default is not None and self.tainting(default):
                self._taint_key(param.arg)
        if isinstance(node, ast.Lambda):
            return
        for decorator in node.decorator_list:  # `@deco def f` binds f to whatever deco returns
            func = decorator.func if isinstance(decorator, ast.Call) else decorator
            if (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) in self.returning:
                self._taint_key(node.name)
                self._taint_key("." + node.name)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Return | ast.Yield | ast.YieldFrom) and self.tainting(sub.value):
                self.returning.add(node.name)
                self.tainted.add("." + node.name)  # a @property returning it reads as an attribute

    def _learn_call(self, call: ast.Call) -> None:
        func = call.func
        args = [*call.args, *(k.value for k in call.keywords)]
        if not any(self.tainting(a) for a in args):
            return
        if isinstance(func, ast.Attribute) and func.attr in CONTAINER_MUTATORS:
            steps = self.steps(func.value)
            if steps is not None:
                self.tainted.add(steps[-1] + "[]")
        # Functions handed over with the tainted values (map, partial, sorted(key=...)) may get them.
        for arg in args:
            if isinstance(arg, ast.Lambda):
                self._taint_params(arg.args)
            name = arg.id if isinstance(arg, ast.Name) else getattr(arg, "attr", None)
            for params in self.functions.get(name or "", []):
                self._taint_params(params)
        if isinstance(func, ast.Lambda):
            self._taint_params(func.args)
        if isinstance(func, ast.Name) and func.id in self.classes:
            cls = self.classes[func.id]
            for stmt in cls.body:
                if isinstance(stmt, _FUNCTIONS) and stmt.name == "__init__":
                    self._map_args(stmt.args, call, shifts=(1,))
                elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    self._taint_key("." + stmt.target.id)  # a generated __init__ stores its fields
            return
        if isinstance(func, ast.Name):
            name, shifts = func.id, (0,)
        elif isinstance(func, ast.Attribute):
            receiver = self.steps(func.value) or [""]
            name, shifts = func.attr, (0, 1)  # unknown receiver: an instance, or a class
            if receiver[0] == "self":
                shifts = (1,)  # a bound method: the first parameter is self
            elif receiver == [receiver[0]] and receiver[0] in self.classes:
                shifts = (0,)  # called on the class: the first argument becomes self
        else:
            return
        for params in self.functions.get(name, []):
            self._map_args(params, call, shifts)

    def _map_args(self, params: ast.arguments, call: ast.Call, shifts: tuple[int, ...]) -> None:
        positional = [*params.posonlyargs, *params.args]
        for i, arg in enumerate(call.args):
            if not self.tainting(arg):
                continue
            if isinstance(arg, ast.Starred):
                self._taint_params(params)
            for shift in shifts:
                if i + shift < len(positional):
                    self._taint_key(positional[i + shift].arg)
                elif params.vararg:
                    self._taint_key(params.vararg.arg)
        by_name = {p.arg: p for p in [*positional, *params.kwonlyargs]}
        for keyword in call.keywords:
            if not self.tainting(keyword.value):
                continue
            target = by_name.get(keyword.arg or "") or params.kwarg
            if keyword.arg is None:
                self._taint_params(params)
            elif target is not None:
                self._taint_key(target.arg)

    def _taint_params(self, params: ast.arguments) -> None:
        for param in _params(params):
            self._taint_key(param.arg)

    def _taint_key(self, key: str) -> None:
        self.tainted.update((key, key + "[]"))

    def _taint_all(self, target: ast.AST) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._taint_all(element)
        elif isinstance(target, ast.Starred):
            self._taint_all(target.value)
        elif (steps := self.steps(target)) is not None:
            self._taint_key(steps[-1])

    def _bind(self, target: ast.AST, value: ast.AST) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            pairs = isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts)
            if pairs and not any(isinstance(e, ast.Starred) for e in (*target.elts, *value.elts)):
                for t, v in zip(target.elts, value.elts, strict=True):
                    self._bind(t, v)
            elif self.tainting(value):
                self._taint_all(target)
            return
        if isinstance(target, ast.Starred):
            target = target.value
        if isinstance(value, ast.Lambda) and self.tainting(value.body):
            name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
            if name:
                self.returning.add(name)
        if (
            isinstance(target, ast.Name)
            and target.id not in self.ambiguous
            and (dotted := self.dotted(value))
        ):
            self.origin.setdefault(target.id, dotted)
        if (steps := self.steps(target)) is not None:
            self._bind_key(steps[-1], value)

    def _bind_key(self, key: str, value: ast.AST) -> None:
        if self.derived(value):
            self.tainted.add(key)
        if self.holds(value):
            self.tainted.add(key + "[]")


class _Checker(ast.NodeVisitor):
    def __init__(self, tree: ast.Module) -> None:
        self.aliases = _Aliases(tree)
        self.violations: list[Violation] = []
        self.scopes: list[tuple[str, set[str]]] = [("module", _bound_names(tree.body))]
        self.decorators: set[int] = set()  # ids of nodes used as decorators
        self.callees: set[int] = set()  # getattr/setattr/delattr names checked at their call
        self.inner: set[int] = set()  # attributes inside a longer chain, checked with the chain
        self.enums = self._enum_classes()
        if not self.aliases.converged:
            self.report(tree, "aliases are chained too deeply to follow; simplify the code")

    def report(self, node: ast.AST, message: str) -> None:
        self.violations.append(Violation(line=getattr(node, "lineno", 1), message=message))

    def _enum_classes(self) -> set[str]:
        enums: set[str] = set()
        for _ in range(len(self.aliases.classes) + 1):  # bases may come later in the file
            for name, cls in self.aliases.classes.items():
                for base in cls.bases:
                    dotted = self.aliases.dotted(base) or ""
                    if dotted.startswith("enum.") or (isinstance(base, ast.Name) and base.id in enums):
                        enums.add(name)
        return enums

    def is_builtin(self, name: str) -> bool:
        """Does `name` here refer to the builtin, i.e. is it bound in no enclosing scope?"""
        for depth, (kind, names) in enumerate(reversed(self.scopes)):
            if kind == "class" and depth > 0:
                continue  # a class body's names are not visible inside its methods
            if name in names:
                return False
        return True

    # -- module and class level

    def visit_Module(self, node: ast.Module) -> None:
        for stmt in node.body:
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                self._check_import_time(stmt.value)
            elif not self._allowed_at_module_level(stmt):
                first = ast.unparse(stmt).splitlines()[0][:60]
                self.report(
                    stmt,
                    f"top-level statement `{first}` is not allowed: a candidate must do nothing at "
                    "import time; module level may hold only imports, constants, functions and classes",
                )
        self.generic_visit(node)

    @staticmethod
    def _allowed_at_module_level(stmt: ast.stmt) -> bool:
        match stmt:
            case (
                ast.Import() | ast.ImportFrom() | ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef()
            ):
                return True
            case ast.Pass() | ast.Expr(value=ast.Constant()):
                return True
            case ast.If(test=ast.Name(id="TYPE_CHECKING") | ast.Attribute(attr="TYPE_CHECKING"), orelse=[]):
                return all(isinstance(s, ast.Import | ast.ImportFrom | ast.Pass) for s in stmt.body)
        return False

    def _check_import_time(self, value: ast.AST) -> None:
        todo = [value]
        while todo:
            node = todo.pop()
            if isinstance(node, ast.Lambda):
                continue  # its body runs later, if ever
            todo.extend(ast.iter_child_nodes(node))
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in IMPORT_TIME_BUILTINS and self.is_builtin(func.id):
                continue
            dotted = self.aliases.dotted(func) or ""
            if any(dotted == c or (c.endswith(".") and dotted.startswith(c)) for c in IMPORT_TIME_CALLS):
                continue
            self.report(
                node,
                f"call `{ast.unparse(func)}(...)` at import time is not allowed: a candidate must do "
                "nothing until it is built; compute it in __init__ or forward",
            )

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._mark_decorators(node.decorator_list)
        for base in node.bases:
            self._check_base(base)
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                self.report(
                    node, f"metaclass of class '{node.name}' is not allowed: it runs at class creation"
                )
        for stmt in node.body:
            self._check_class_statement(node.name, stmt)
        for child in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(child)
        self._in_scope("class", _bound_names(node.body), node.body)

    def _check_base(self, base: ast.expr) -> None:
        plain = base.value if isinstance(base, ast.Subscript) else base  # Generic[T]
        dotted = self.aliases.dotted(plain)
        root = self.aliases.steps(plain) or [""]
        if dotted and root[0] not in self.aliases.ambiguous:
            last = dotted.rsplit(".", 1)[-1]
            if dotted.startswith("torch.") and (last.endswith("Tensor") or last in TENSOR_CLASSES):
                self.report(
                    base,
                    f"subclassing '{dotted}' is not allowed: a tensor subclass returned by the mixer "
                    "would run its own code in every torch call the harness makes on it",
                )
            return
        if isinstance(plain, ast.Name) and (
            plain.id in self.aliases.classes or (hasattr(builtins, plain.id) and self.is_builtin(plain.id))
        ):
            return
        self.report(base, f"base class `{ast.unparse(base)}` is not allowed: bases must be named classes")

    def _check_class_statement(self, cls: str, stmt: ast.stmt) -> None:
        names: list[str] = []
        if isinstance(stmt, (*_FUNCTIONS, ast.ClassDef)):
            names = [stmt.name]
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if stmt.value is not None:
                self._check_import_time(stmt.value)
        elif not (
            isinstance(stmt, ast.Pass)
            or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
        ):
            first = ast.unparse(stmt).splitlines()[0][:60]
            self.report(
                stmt,
                f"statement `{first}` in the body of class '{cls}' is not allowed: a class body may "
                "only define methods and attributes",
            )
        for name in names:
            if name in MODULE_MACHINERY:
                self.report(
                    stmt,
                    f"redefining '{name}' in class '{cls}' is not allowed: torch.nn.Module's own "
                    "machinery is how the harness counts, moves and trains the model",
                )

    # -- scopes

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if _is_dunder(node.name) and node.name not in ALLOWED_DUNDER_METHODS:
            self.report(
                node,
                f"defining '{node.name}' is not allowed: special methods run inside the harness's own "
                f"calls; a class may define only {', '.join(ALLOWED_DUNDER_METHODS)}",
            )
        self._mark_decorators(node.decorator_list)
        for child in [*node.decorator_list, node.returns]:
            if child is not None:
                self.visit(child)
        self._visit_signature(node.args)
        bound = {p.arg for p in _params(node.args)} | _bound_names(node.body)
        self._in_scope("function", bound, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_signature(node.args)
        self._in_scope("function", {p.arg for p in _params(node.args)}, [node.body])

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> None:
        first, *rest = node.generators
        self.visit(first.iter)  # evaluated in the enclosing scope
        targets = _bound_names(g.target for g in node.generators)
        body: list[ast.AST] = [first.target, *first.ifs]
        for gen in rest:
            body += [gen.target, gen.iter, *gen.ifs]
        body += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        self._in_scope("function", targets, body)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def _visit_signature(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for param in _params(args):
            if param.annotation is not None:
                self.visit(param.annotation)

    def _in_scope(self, kind: str, names: set[str], body: Iterable[ast.AST]) -> None:
        self.scopes.append((kind, names))
        for node in body:
            self.visit(node)
        self.scopes.pop()

    def _mark_decorators(self, decorators: Iterable[ast.expr]) -> None:
        for decorator in decorators:
            self.decorators.add(id(decorator.func if isinstance(decorator, ast.Call) else decorator))

    # -- statements

    def visit_Global(self, node: ast.Global) -> None:
        self.report(node, f"'global {', '.join(node.names)}' is not allowed: a candidate has no use for it")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_import(node, alias.name, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            self.report(node, "relative imports are not allowed: a candidate is one self-contained file")
            return
        for alias in node.names:
            if alias.name == "*":
                self.report(
                    node, f"'from {node.module} import *' is not allowed: it hides which names are used"
                )
            else:
                self._check_import(node, node.module, f"{node.module}.{alias.name}")

    def _check_import(self, node: ast.AST, module: str, dotted: str) -> None:
        if module.split(".")[0] not in ALLOWED_IMPORTS:
            allowed = ", ".join(ALLOWED_IMPORTS)
            self.report(node, f"import of '{module}' is not allowed; candidates may import only {allowed}")
        elif problem := _dotted_problem(dotted):
            self.report(node, problem)

    # -- expressions

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name in FORBIDDEN_BUILTINS and self.is_builtin(name):
            self.report(node, f"'{name}' is not allowed: {FORBIDDEN_BUILTINS[name]}")
        elif (
            name in ("getattr", "setattr", "delattr")
            and id(node) not in self.callees
            and self.is_builtin(name)
        ):
            self.report(node, f"'{name}' is allowed only when called directly, as {name}(obj, ...)")
        elif _is_dunder(name) and name not in ALLOWED_DUNDER_NAMES:
            self.report(node, f"name '{name}' is not allowed: dunder names reach interpreter internals")
        origin = self.aliases.origin.get(name, "")
        if origin.rsplit(".", 1)[-1] in DECORATOR_ONLY and id(node) not in self.decorators:
            self.report(
                node, f"'{origin}' may be used only as a decorator: called on anything, it writes attributes"
            )

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str) and _is_dunder(value) and value not in ALLOWED_DUNDER_NAMES:
            self.report(node, f"string '{value}' is not allowed: dunder names reach interpreter internals")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del):
            self._check_store(node)
        if problem := self._member_problem(node, node.value, node.attr, isinstance(node.ctx, ast.Load)):
            self.report(node, problem)
        if isinstance(node.value, ast.Attribute):
            self.inner.add(id(node.value))
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del):
            self._check_store(node)
        self.generic_visit(node)

    def _member_problem(self, node: ast.AST, obj: ast.AST, attr: str, load: bool = True) -> str | None:
        """Why `obj.attr` (or `getattr(obj, "attr")`) may not be used, or None."""
        if _is_dunder(attr) and not (attr in ALLOWED_DUNDER_ATTRIBUTES and load):
            return (
                f"attribute '{attr}' is not allowed: dunder attributes reach interpreter internals; "
                f"only {' and '.join(ALLOWED_DUNDER_ATTRIBUTES)} may be used"
            )
        dotted = self.aliases.dotted(node)
        if dotted and id(node) in self.inner:
            return None  # checked with the whole chain it belongs to
        if dotted and (problem := _dotted_problem(dotted)):
            return problem
        if attr in FORBIDDEN_ATTRIBUTES:
            return f"attribute '{attr}' is not allowed: {FORBIDDEN_ATTRIBUTES[attr]}"
        if attr.startswith("_") and not _is_dunder(attr) and self.aliases.derived(obj):
            return f"private name '{attr}' of an imported module is not allowed"
        if dotted and attr in DECORATOR_ONLY and id(node) not in self.decorators:
            return f"'{dotted}' may be used only as a decorator: called on anything, it writes attributes"
        if isinstance(obj, ast.Name) and obj.id == "self" and attr in MODULE_MACHINERY and not load:
            return f"assigning 'self.{attr}' is not allowed: it replaces torch.nn.Module machinery"
        return None

    def _check_store(self, node: ast.Attribute | ast.Subscript) -> None:
        verb = "deletion of" if isinstance(node.ctx, ast.Del) else "assignment to"
        target = ast.unparse(node)
        steps = self.aliases.steps(node)
        if steps is None:
            if isinstance(node, ast.Attribute):
                self.report(node, f"{verb} '{target}' is not allowed: attributes may be set only on names")
            return
        if any(key in self.aliases.tainted for key in steps[:-1]):
            owner = self.aliases.dotted(node.value)
            owner = f"'{owner}'" if owner else "an imported module"
            self.report(
                node,
                f"{verb} '{target}' is not allowed: it would change {owner} for the harness too; "
                "assign only to self.* and local variables",
            )

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in ("getattr", "setattr", "delattr")
            and self.is_builtin(func.id)
        ):
            self.callees.add(id(func))
            self._check_reflection(func.id, node)
        if (
            isinstance(func, ast.Attribute)
            and func.attr in CONTAINER_MUTATORS
            and self.aliases.derived(func.value)
        ):
            self.report(
                node,
                f"'{ast.unparse(func)}(...)' is not allowed: it would change a container owned by an "
                "imported module",
            )
        dotted = self.aliases.dotted(func) or ""
        is_enum = dotted.startswith("enum.") or (isinstance(func, ast.Name) and func.id in self.enums)
        if is_enum and len(node.args) + len(node.keywords) >= 2:
            self.report(node, "the functional Enum API is not allowed: it builds a class from a mapping")
        self.generic_visit(node)

    def _check_reflection(self, name: str, call: ast.Call) -> None:
        if len(call.args) < 2 or any(isinstance(a, ast.Starred) for a in call.args) or call.keywords:
            self.report(call, f"'{name}' needs an object and an attribute name as plain arguments")
            return
        obj, attr = call.args[0], _literal_name(call)
        if attr is not None and _is_dunder(attr):
            return  # the string literal itself is reported
        on_self = isinstance(obj, ast.Name) and obj.id == "self"
        if name != "getattr" and not on_self:
            self.report(
                call, f"'{name}' is allowed only on self: on anything else it could change shared modules"
            )
        elif attr is None and not on_self:
            self.report(call, "'getattr' needs a string-literal attribute name unless the object is self")
        elif attr is not None and (problem := self._member_problem(call, obj, attr, name == "getattr")):
            self.report(call, problem)
