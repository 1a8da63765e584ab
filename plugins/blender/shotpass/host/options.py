"""Pass, model and option menus from the server's ListModels/ServerInfo, and typed option values.

The server's answer is kept in the scene (passes, models, each option's type, default, limits, choices
and help), so the panel works from a file reopened while the server is offline. Conversions to the
wire's text go through the shared ``ui_model.OptionField``, the same as the Nuke panel.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..core import ensure_client_importable

ensure_client_importable()

from shotpass_client import ui_model  # noqa: E402

_INFO: List[Any] = []  # the last ServerInfo of this session
# Blender keeps only pointers to dynamic enum strings: hold them for as long as they can be shown.
_CHOICE_ITEMS: Dict[str, List[tuple]] = {}
SHOWN_BY_PANEL = ("strength",)  # options the panel has its own field for


def set_server_info(info: Any) -> None:
    _INFO[:] = [info]


def server_info() -> Optional[Any]:
    return _INFO[0] if _INFO else None


def choice_items(option: Any) -> List[tuple]:
    key = option.choices
    if key not in _CHOICE_ITEMS:
        _CHOICE_ITEMS[key] = [(c, c, "") for c in key.split("\n") if c] or [("", "-", "")]
    return _CHOICE_ITEMS[key]


def field_of(option: Any) -> ui_model.OptionField:
    kind = {"STRING": ui_model.STRING, "INT": ui_model.INT, "FLOAT": ui_model.FLOAT, "BOOL": ui_model.BOOL,
            "CHOICE": ui_model.CHOICE}[option.kind]
    return ui_model.OptionField(
        name=option.name, kind=kind, default=ui_model._typed(kind, option.default), description=option.description,
        choices=[c for c in option.choices.split("\n") if c],
        minimum=option.minimum if option.has_min else None, maximum=option.maximum if option.has_max else None)


def value_of(option: Any) -> Any:
    return getattr(option, f"{option.kind.lower()}_value")  # only this one: an unset enum would warn


def _set_value(option: Any, value: Any) -> None:
    if option.kind == "INT":
        option.int_value = int(value)
    elif option.kind == "FLOAT":
        option.float_value = float(value)
    elif option.kind == "BOOL":
        option.bool_value = bool(value)
    elif option.kind == "CHOICE":
        if str(value) in [c for c, _, _ in choice_items(option)]:
            option.choice_value = str(value)
    else:
        option.string_value = str(value)


def typed_options(settings: Any) -> Dict[str, str]:
    """The typed options as the wire wants them (text), clamped to the schema's limits."""
    return {o.name: field_of(o).text(value_of(o)) for o in settings.option_values}


def fill_menus(settings: Any, info: Any) -> None:
    settings.server_passes.clear()
    for p in info.passes:
        item = settings.server_passes.add()
        item.name, item.description = p.name, getattr(p, "description", "")
    settings.server_models.clear()
    # Models the server cannot run come last, marked, with its reason as their description.
    for m in sorted(info.models, key=lambda m: bool(m.unavailable)):
        item = settings.server_models.add()
        item.name = m.name + (ui_model.UNAVAILABLE_MARK if m.unavailable else "")
        item.description = f"unavailable: {m.unavailable}" if m.unavailable else m.description
        item.pass_name = m.pass_name
        item.reads_context = m.reads_context_frames


def reads_handles(settings: Any) -> Optional[bool]:
    """Whether the chosen model reads handles (a video model), from the server's model list kept in the file;
    None while unknown (never asked, or a model it does not list)."""
    name = ui_model.model_name(settings.model)
    info = server_info()
    if not name and info is not None:
        _models, name = ui_model.pass_models(info, settings.pass_name)
    item = settings.server_models.get(name) if name else None
    return bool(item.reads_context) if item is not None else None


def unavailable_problem(model: Any) -> str:
    return f"model {model.name} is unavailable on this server ({model.unavailable}): choose another"


def model_problem(settings: Any) -> Optional[str]:
    """Why the chosen model cannot be sent (the server listed it unavailable), or None."""
    info = server_info()
    model = ui_model.find_model(info, ui_model.model_name(settings.model)) if info and settings.model else None
    return unavailable_problem(model) if model is not None and model.unavailable else None


def sync(settings: Any) -> Optional[str]:
    """Typed option fields for the chosen model (values kept where name and type still match); a problem
    as text, or None."""
    info = server_info()
    if info is None:
        return None  # offline: the fields stored in the file stay as they are
    name = settings.model
    if not name:
        _models, name = ui_model.pass_models(info, settings.pass_name)
    model = ui_model.find_model(info, ui_model.model_name(name))
    if model is None:
        return f"the server has no model {name!r} for pass {settings.pass_name!r}"
    if model.unavailable:
        return unavailable_problem(model)
    kept = {o.name: (o.kind, value_of(o)) for o in settings.option_values}
    if getattr(settings, "pass_name", "") and model.pass_name != settings.pass_name and settings.model:
        settings.pass_name = model.pass_name  # a model picked from the menu brings its pass
    settings.option_values.clear()
    for f in ui_model.option_fields(model, skip=SHOWN_BY_PANEL):
        item = settings.option_values.add()
        item.name, item.kind, item.description = f.name, f.kind.upper(), f.description
        item.default = f.text(f.default) if f.kind != ui_model.STRING else str(f.default)
        item.choices = "\n".join(f.choices)
        item.has_min, item.has_max = f.minimum is not None, f.maximum is not None
        item.minimum, item.maximum = f.minimum or 0.0, f.maximum or 0.0
        old = kept.get(f.name)
        _set_value(item, old[1] if old is not None and old[0] == item.kind else f.default)
    return None
