"""Per-frame values of a render (a schedule): an animated prompt, strength or any other option.

A schedule is a set of keys, frame -> value. A frame takes the value of the latest key at or before it
(held until the next key); frames before the first key take the render's constant value. The same rules
serve the server (which resolves each frame's prompt and options), the CLI (``--prompt-at``,
``--option-at``) and the plugins. Pure Python.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, TypeVar

T = TypeVar("T")
MAX_KEYS = 100_000  # per render, prompts and options together


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message names the key and what to do."""


def value_at(keys: Mapping[Any, T], frame: int, default: T) -> T:
    """The value in effect on `frame`: the latest key at or before it, else `default`. Keys may be text."""
    if not keys:
        return default
    frames = sorted(int(k) for k in keys)
    i = bisect_right(frames, frame)
    if i == 0:
        return default
    by_int = {int(k): v for k, v in keys.items()}
    return by_int[frames[i - 1]]


def frame_values(settings: Mapping[str, Any], frame: int) -> Tuple[str, Dict[str, str]]:
    """(prompt, option overrides) of one frame from a render's settings (as stored: keys may be text)."""
    prompt = value_at(settings.get("prompt_by_frame") or {}, frame, str(settings.get("prompt", "")))
    overrides: Dict[str, str] = {}
    for name, keys in (settings.get("options_by_frame") or {}).items():
        value: Optional[str] = value_at(keys, frame, None)
        if value is not None:
            overrides[name] = value
    return prompt, overrides


def _frame(text: str, item: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ScheduleError(f"{flag} {item!r}: start with a frame number, e.g. {flag} 1001:...") from None


def parse_prompt_at(items: Iterable[str]) -> Dict[int, str]:
    """``1001:a foggy street`` items -> {1001: "a foggy street"}."""
    out: Dict[int, str] = {}
    for item in items:
        frame, sep, text = item.partition(":")
        if not sep:
            raise ScheduleError(f"--prompt-at {item!r}: write FRAME:PROMPT, e.g. 1001:a foggy street")
        out[_frame(frame.strip(), item, "--prompt-at")] = text
    return out


def parse_option_at(items: Iterable[str]) -> Dict[str, Dict[int, str]]:
    """``1001:strength=0.4`` items -> {"strength": {1001: "0.4"}}."""
    out: Dict[str, Dict[int, str]] = {}
    for item in items:
        frame, sep, rest = item.partition(":")
        key, eq, value = rest.partition("=")
        if not sep or not eq or not key.strip():
            raise ScheduleError(f"--option-at {item!r}: write FRAME:KEY=VALUE, e.g. 1001:strength=0.4")
        out.setdefault(key.strip(), {})[_frame(frame.strip(), item, "--option-at")] = value.strip()
    return out


def key_count(prompt_by_frame: Mapping[Any, str], options_by_frame: Mapping[str, Mapping[Any, str]]) -> int:
    return len(prompt_by_frame) + sum(len(v) for v in options_by_frame.values())


def as_settings(prompt_by_frame: Mapping[int, str],
                options_by_frame: Mapping[str, Mapping[int, str]]) -> Dict[str, Any]:
    """The schedule as a render's stored settings hold it (JSON: frame keys as text); empty parts left out."""
    out: Dict[str, Any] = {}
    if prompt_by_frame:
        out["prompt_by_frame"] = {str(int(f)): str(v) for f, v in sorted(prompt_by_frame.items())}
    options = {k: {str(int(f)): str(v) for f, v in sorted(keys.items())}
               for k, keys in options_by_frame.items() if keys}
    if options:
        out["options_by_frame"] = options
    return out
