"""Prompt templates, one Jinja2 file per role, overridable by the user.

    render("researcher", context)                      # prompts/researcher.j2
    render("researcher", context, Path("my_prompts"))  # my_prompts/researcher.j2 if it exists

Templates hold no task or baseline by name: everything task-specific arrives in the context (the
task's own description, the contract, the baselines' scores), so a new task or a user's baseline
needs no prompt change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

PROMPT_DIR = Path(__file__).parent
ROLES = ("researcher", "coder", "analyst", "judge")


class PromptError(ValueError):
    """A template that cannot be rendered; the message is one line."""


def environment(user_dir: Path | None = None) -> jinja2.Environment:
    folders = [str(user_dir)] if user_dir is not None else []
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([*folders, str(PROMPT_DIR)]),
        undefined=jinja2.StrictUndefined,  # a missing context value is an error, not a blank
        keep_trailing_newline=True,
        autoescape=False,  # plain text for a model, not HTML
    )


def render(role: str, context: dict[str, Any], user_dir: Path | None = None) -> str:
    if user_dir is not None and not user_dir.is_dir():
        raise PromptError(f"prompt folder {user_dir} does not exist")
    try:
        return environment(user_dir).get_template(f"{role}.j2").render(**context)
    except jinja2.TemplateNotFound:
        raise PromptError(f"no prompt template for role {role!r}; roles: {', '.join(ROLES)}") from None
    except jinja2.UndefinedError as exc:
        raise PromptError(f"prompt {role}.j2 needs a value it was not given: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"prompt {exc.filename or role}: line {exc.lineno}: {exc.message}") from None
