"""A recording stand-in for ``bpy.types.UILayout``, as strict as Blender is when it draws (runs inside bpy).

Panels draw only with a UI, so headless tests call the extension's real ``draw()`` functions with this
layout instead. Everything is checked against the running Blender's own RNA, so a typo or an API that
changed between Blender versions fails here as it would in the artist's sidebar:

- only methods and attributes that exist on ``bpy.types.UILayout`` (``bl_rna.functions`` / ``.properties``),
  with the arguments each one takes (names, count, required ones, types, enum values such as icon names);
- ``prop``/``prop_search``...: the property exists on the data's RNA (``data.bl_rna.properties``);
- ``operator``: the operator is registered, and every property set on what it returns exists on it;
- ``menu``: a registered ``bpy.types.Menu``; its ``draw`` is drawn too;
- ``template_list``: a registered ``bpy.types.UIList`` whose ``draw_item`` is drawn for every item.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

import bpy


class StrictLayoutError(AssertionError):
    """A draw call that real Blender would refuse."""


def _rna_items(prop: Any) -> set:
    return {item.identifier for item in prop.enum_items}


def check_value(where: str, prop: Any, value: Any) -> None:
    """A value as Blender's RNA accepts it for this property or parameter."""
    kind = prop.type
    if kind == "ENUM":
        items = _rna_items(prop)
        values = value if prop.is_enum_flag and isinstance(value, (set, frozenset)) else {value}
        if not items and not prop.is_enum_flag:
            return  # a dynamic enum (items from a callback): nothing static to check against
        bad = [v for v in values if not isinstance(v, str) or v not in items]
        if bad:
            raise StrictLayoutError(f"{where}: {bad[0]!r} is not one of {prop.identifier}'s items")
    elif kind == "BOOLEAN" and getattr(prop, "array_length", 0) == 0 and not isinstance(value, bool):
        raise StrictLayoutError(f"{where}: {prop.identifier} takes a bool, got {value!r}")
    elif kind == "INT" and getattr(prop, "array_length", 0) == 0 and (
            isinstance(value, bool) or not isinstance(value, int)):
        raise StrictLayoutError(f"{where}: {prop.identifier} takes an int, got {value!r}")
    elif kind == "FLOAT" and getattr(prop, "array_length", 0) == 0 and (
            isinstance(value, bool) or not isinstance(value, (int, float))):
        raise StrictLayoutError(f"{where}: {prop.identifier} takes a number, got {value!r}")
    elif kind == "STRING" and not isinstance(value, str):
        raise StrictLayoutError(f"{where}: {prop.identifier} takes a string, got {value!r}")
    elif kind == "POINTER" and value is not None and not hasattr(value, "bl_rna"):
        raise StrictLayoutError(f"{where}: {prop.identifier} takes Blender data, got {value!r}")


def operator_rna(idname: str) -> Any:
    """The registered operator's RNA, or a StrictLayoutError naming the idname."""
    module, _, name = idname.partition(".")
    try:
        return getattr(getattr(bpy.ops, module), name).get_rna_type()
    except (AttributeError, KeyError) as err:
        raise StrictLayoutError(f"operator {idname!r} is not registered") from err


def _has_property(data: Any, name: str, where: str) -> Any:
    rna = getattr(data, "bl_rna", None)
    if rna is None:
        raise StrictLayoutError(f"{where}: {data!r} is not Blender data")
    if name not in rna.properties:
        raise StrictLayoutError(f"{where}: {rna.identifier} has no property {name!r}")
    return rna.properties[name]


class OperatorProps:
    """What ``layout.operator()`` returns: setting a property the operator lacks fails, as in Blender."""

    def __init__(self, idname: str, record: Dict[str, Any]) -> None:
        object.__setattr__(self, "_rna", operator_rna(idname))
        object.__setattr__(self, "_record", record)

    def __setattr__(self, name: str, value: Any) -> None:
        rna = object.__getattribute__(self, "_rna")
        if name not in rna.properties or name == "rna_type":
            raise StrictLayoutError(f"operator {rna.identifier}: no property {name!r}")
        check_value(f"operator {rna.identifier}.{name}", rna.properties[name], value)
        object.__getattribute__(self, "_record")["props"][name] = value

    def __getattr__(self, name: str) -> Any:
        record = object.__getattribute__(self, "_record")
        if name in record["props"]:
            return record["props"][name]
        rna = object.__getattribute__(self, "_rna")
        if name not in rna.properties:
            raise AttributeError(name)
        return rna.properties[name].default


class Recorder:
    """Shared by every layout of one draw: the calls in order, and the context the lists draw with."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.calls: List[Dict[str, Any]] = []

    def layout(self) -> StrictLayout:
        return StrictLayout(self)

    def of(self, method: str) -> List[Dict[str, Any]]:
        return [c for c in self.calls if c["method"] == method]

    def labels(self) -> List[str]:
        return [c["args"].get("text", "") for c in self.of("label")]

    def operators(self) -> List[str]:
        return [c["args"]["operator"] for c in self.of("operator")]

    def props(self) -> List[str]:
        return [f'{c["data"]}.{c["args"]["property"]}' for c in self.calls if "property" in c["args"]]

    def summary(self) -> Dict[str, Any]:
        """JSON-friendly: what a test on the pytest side asserts on."""
        return {"labels": self.labels(), "operators": self.operators(), "props": self.props(),
                "operator_props": [(c["args"]["operator"], {k: v if isinstance(v, (str, int, float, bool)) else
                                   repr(v) for k, v in c["props"].items()}) for c in self.of("operator")],
                "progress": [{k: v for k, v in c["args"].items() if isinstance(v, (str, int, float))}
                             for c in self.of("progress")],
                "searches": [f'{c["data"]}.{c["args"]["property"]} in {c["args"]["search_property"]}'
                             for c in self.of("prop_search")],
                "methods": sorted({c["method"] for c in self.calls}),
                "list_items": sum(1 for c in self.calls if c["method"] == "draw_item")}


def _parameters(name: str) -> Any:
    fn = bpy.types.UILayout.bl_rna.functions.get(name)
    if fn is None:
        raise AttributeError(f"UILayout has no method {name!r} in Blender {bpy.app.version_string}")
    return fn


class StrictLayout:
    def __init__(self, recorder: Recorder) -> None:
        object.__setattr__(self, "_recorder", recorder)
        object.__setattr__(self, "_values", {})

    # Attributes (enabled, alert, use_property_split...): only those UILayout has, with values it takes.
    def __setattr__(self, name: str, value: Any) -> None:
        props = bpy.types.UILayout.bl_rna.properties
        if name not in props or name == "rna_type":
            raise StrictLayoutError(f"UILayout has no attribute {name!r} in Blender {bpy.app.version_string}")
        check_value(f"UILayout.{name}", props[name], value)
        object.__getattribute__(self, "_values")[name] = value

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        props = bpy.types.UILayout.bl_rna.properties
        if name in props and name != "rna_type":
            return getattr(props[name], "default", None)
        fn = _parameters(name)  # AttributeError for a method this Blender lacks, so hasattr() is honest
        return lambda *args, **kwargs: self._call(name, fn, args, kwargs)

    def _call(self, name: str, fn: Any, args: tuple, kwargs: Dict[str, Any]) -> Any:
        params = [p for p in fn.parameters if not p.is_output]
        where = f"UILayout.{name}"
        if len(args) > len(params):
            raise StrictLayoutError(f"{where} takes at most {len(params)} positional arguments, got {len(args)}")
        given = {p.identifier: value for p, value in zip(params, args)}
        by_name = {p.identifier: p for p in params}
        for key, value in kwargs.items():
            if key not in by_name:
                raise StrictLayoutError(f"{where} has no argument {key!r}")
            if key in given:
                raise StrictLayoutError(f"{where}: {key!r} given twice")
            given[key] = value
        for p in params:
            if p.is_required and p.identifier not in given:
                raise StrictLayoutError(f"{where}: missing required argument {p.identifier!r}")
        for key, value in given.items():
            check_value(where, by_name[key], value)
        recorder = object.__getattribute__(self, "_recorder")
        record: Dict[str, Any] = {"method": name, "args": given, "props": {}, "data": ""}
        recorder.calls.append(record)
        self._check_semantics(name, given, record, recorder)
        outputs = [p for p in fn.parameters if p.is_output]
        results = [self._output(p, given, record, recorder) for p in outputs]
        if not results:
            return None
        return results[0] if len(results) == 1 else tuple(results)

    @staticmethod
    def _output(param: Any, given: Dict[str, Any], record: Dict[str, Any], recorder: Recorder) -> Any:
        kind = getattr(param, "fixed_type", None)
        kind = kind.identifier if kind is not None else ""
        if kind == "UILayout":
            return StrictLayout(recorder)
        if kind == "OperatorProperties":
            return OperatorProps(given["operator"], record)
        return None

    def _check_semantics(self, name: str, given: Dict[str, Any], record: Dict[str, Any], recorder: Recorder) -> None:
        where = f"UILayout.{name}"
        if "data" in given and "property" in given:  # prop, prop_search, prop_enum, props_enum, prop_menu_enum...
            _has_property(given["data"], given["property"], where)
            record["data"] = given["data"].bl_rna.identifier
        if "search_data" in given and "search_property" in given:
            _has_property(given["search_data"], given["search_property"], where)
        if name in ("operator", "operator_menu_enum", "operator_enum") and "operator" in given:
            rna = operator_rna(given["operator"])
            if "property" in given and given["property"] not in rna.properties:
                raise StrictLayoutError(f"{where}: operator {given['operator']} has no property {given['property']!r}")
        if name == "menu":
            menu = getattr(bpy.types, given["menu"], None)
            if not (isinstance(menu, type) and issubclass(menu, bpy.types.Menu) and menu.is_registered):
                raise StrictLayoutError(f"{where}: menu {given['menu']!r} is not registered")
            menu.draw(SimpleNamespace(layout=StrictLayout(recorder)), recorder.context)
        if name == "template_list":
            self._draw_list(given, recorder)

    @staticmethod
    def _draw_list(given: Dict[str, Any], recorder: Recorder) -> None:
        """As Blender does: the UIList class by name, then its draw_item for every row."""
        cls = getattr(bpy.types, given["listtype_name"], None)
        if not (isinstance(cls, type) and issubclass(cls, bpy.types.UIList) and cls.is_registered):
            raise StrictLayoutError(f"template_list: UIList {given['listtype_name']!r} is not registered")
        data, prop = given["dataptr"], given["propname"]
        _has_property(data, prop, "template_list")
        _has_property(given["active_dataptr"], given["active_propname"], "template_list")
        rna_args = [p.identifier for p in bpy.types.UIList.bl_rna.functions["draw_item"].parameters]
        # Blender passes as many of draw_item's RNA arguments as the Python function takes.
        takes = len(inspect.signature(cls.draw_item).parameters) - 1
        for index, item in enumerate(getattr(data, prop)):
            values = {"context": recorder.context, "layout": StrictLayout(recorder), "data": data, "item": item,
                      "icon": 0, "active_data": given["active_dataptr"],
                      "active_property": given["active_propname"], "index": index, "flt_flag": 0}
            recorder.calls.append({"method": "draw_item", "args": {}, "props": {}, "data": ""})
            cls.draw_item(SimpleNamespace(), *[values[a] for a in rna_args[:takes]])


def draw(draw_fn: Any, owner: Any = None, context: Optional[Any] = None) -> Recorder:
    """Call a real ``draw(self, context)`` with a strict layout; ``owner`` stands for ``self`` (its other
    attributes are read from it, e.g. the add-on preferences)."""
    context = context or bpy.context
    recorder = Recorder(context)
    layout = recorder.layout()
    if owner is None:
        this: Any = SimpleNamespace(layout=layout)
    else:
        class _Self:  # the owner's data, with the layout Blender would hand to draw()
            def __getattr__(self, name: str) -> Any:
                return layout if name == "layout" else getattr(owner, name)

        this = _Self()
    draw_fn(this, context)
    return recorder
