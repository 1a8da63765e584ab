"""Prompt guidance: diffusion models here expect a description of the result, not an instruction."""

from __future__ import annotations

import re
from typing import Optional

_INSTRUCTION = re.compile(
    r"^\s*(please\s+)?(make|turn|change|replace|convert|transform|add|remove|give|put|let)\b", re.IGNORECASE
)


def instruction_warning(prompt: str, family: str, model: str) -> Optional[str]:
    """A warning (never an error) when a prompt to a descriptive model reads like an instruction."""
    if family != "descriptive" or not _INSTRUCTION.match(prompt or ""):
        return None
    return (
        f"the prompt reads like an instruction ({prompt.strip()[:40]!r}); model {model} expects a description "
        "of the result, e.g. 'an oil painting of a harbour at dusk' instead of 'make it an oil painting'"
    )


def unused_prompt_warning(prompt: str, uses_prompt: bool, model: str) -> Optional[str]:
    if prompt.strip() and not uses_prompt:
        return f"model {model} takes no prompt; the prompt was stored with the render but not used"
    return None
