"""The README's promise: imports point one way, experiments <- vetting <- sandbox <- knowledge_base
<- budget <- agents <- CLI. Checked on every import statement, including those inside functions
and under TYPE_CHECKING, since a lazy import that points up is still an arrow the wrong way."""

from __future__ import annotations

import ast
from pathlib import Path

import discover

ROOT = Path(discover.__file__).resolve().parent.parent
# Lower numbers are lower layers; prompts (templates) sit just below the agents that render them.
LAYERS = {
    "experiments": 0,
    "vetting": 1,
    "sandbox": 2,
    "knowledge_base": 3,
    "budget": 4,
    "prompts": 5,
    "agents": 6,
    "discover": 7,  # the CLI and the report
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "discover":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "discover"


def imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
    return modules


def test_no_import_points_up_the_stack():
    upward = [
        f"{path.relative_to(ROOT)} imports {module}"
        for folder in LAYERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        for module in imported_modules(path)
        if (target := layer_of(module)) is not None and LAYERS[target] > LAYERS[folder]
    ]
    assert upward == []


def test_the_check_sees_every_package():
    assert all((ROOT / folder / "__init__.py").is_file() for folder in LAYERS)
    assert layer_of("discover.agents.graph") == "agents" and layer_of("discover.cli") == "discover"
