"""Animated settings sent per frame: a keyframed strength or typed option, and the prompt keys.

Blender keyframes numbers, not text: the strength and the typed number/bool options are read from their
F-curves at each frame sent; the prompt comes from the panel's prompt keys (held until the next key).
The wire format and the hold rule are the shared ``shotpass_client.schedule``.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Tuple

import bpy

from . import options as option_fields

# Blender records a collection item by index ([2]) or, when given so, by name (["tile_size"]).
_OPTION_PATH = re.compile(r'^shotpass\.option_values\[(?:"(?P<name>[^"]+)"|(?P<index>\d+))\]\.(?P<attr>\w+)_value$')


def fcurves(owner: Any) -> List[Any]:
    """The F-curves animating a datablock: layered actions (4.4+, the only kind in 5.x) or legacy ones."""
    anim = getattr(owner, "animation_data", None)
    action = anim.action if anim is not None else None
    if action is None:
        return []
    if getattr(action, "layers", None) and len(action.layers):
        from bpy_extras import anim_utils

        bag = anim_utils.action_get_channelbag_for_slot(action, anim.action_slot)
        return list(bag.fcurves) if bag is not None else []
    return list(action.fcurves)


def schedule(scene: bpy.types.Scene, frames: Iterable[int]) -> Tuple[Dict[int, str], Dict[str, Dict[int, str]]]:
    """(prompt by frame, options by frame) for the frames sent; empty when nothing is animated."""
    s = scene.shotpass
    frames = sorted(set(frames))
    options: Dict[str, Dict[int, str]] = {}
    typed = {o.name: o for o in s.option_values}
    by_index = list(s.option_values)
    for fc in fcurves(scene):
        if fc.mute:
            continue
        if fc.data_path == "shotpass.strength":
            values = {f: fc.evaluate(f) for f in frames}
            options["strength"] = {f: f"{min(v, 1.0):g}" for f, v in values.items() if v >= 0}
            continue
        match = _OPTION_PATH.match(fc.data_path)
        option = None
        if match and match.group("name"):
            option = typed.get(match.group("name"))
        elif match and int(match.group("index")) < len(by_index):
            option = by_index[int(match.group("index"))]
        if option is not None and option.kind in ("INT", "FLOAT", "BOOL"):
            field = option_fields.field_of(option)
            kind_value = {"INT": lambda v: int(round(v)), "FLOAT": float, "BOOL": lambda v: v >= 0.5}[option.kind]
            options[option.name] = {f: field.text(kind_value(fc.evaluate(f))) for f in frames}
    prompts = {k.frame: k.prompt for k in s.prompt_keys}
    return prompts, {name: keys for name, keys in options.items() if keys}
