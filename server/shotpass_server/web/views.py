"""Catalog rows as the JSON the review pages read: renders, lineage, settings diffs, queue lanes, stats."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from .. import catalog as cat

# Settings a version diff compares besides the pass's own options.
DIFF_KEYS = ("pass_name", "model", "prompt", "negative_prompt", "seed", "colour_space", "view", "priority")


def render_json(r: cat.RenderRow, may_change: bool, frames: bool = True) -> Dict[str, Any]:
    out: Dict[str, Any] = {
        "id": r.id,
        "project": r.project,
        "shot": r.shot,
        "version": r.version,
        "label": r.label,
        "lane": r.lane,
        "state": r.state,
        "user": r.owner,
        "parent": r.parent or "",
        "children": list(r.children),
        "settings": r.settings,
        "scale": r.scale,
        "device": r.device,
        "device_seconds": round(r.compute_seconds, 3),
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "error": r.error,
        "warnings": r.warnings,
        "review": {"rating": r.rating, "pinned": r.pinned, "note": r.note, "approved": r.approved},
        "frames_done": r.frames_done,
        "frames_total": r.frames_total,
        "qc": qc_figures(r),
        "may_change": may_change,
    }
    if frames:
        out["frames"] = [
            {
                "frame": f.frame,
                "state": f.state,
                "source": f.input_digest,
                "source_name": f.input_name,
                "output": f.output_digest,
                "device_seconds": round(f.compute_seconds, 3),
                "attempts": f.attempts,
                "error": f.error,
            }
            for f in r.frames
        ]
    return out


def qc_figures(r: cat.RenderRow) -> Dict[str, Any]:
    """Quality figures a render carries (e.g. a temporal flicker ratio), where the catalog records them."""
    figures = getattr(r, "qc", None)
    if figures is None:
        figures = r.settings.get("qc") if isinstance(r.settings.get("qc"), dict) else None
    return dict(figures) if isinstance(figures, dict) else {}


def lineage(renders: Iterable[cat.RenderRow]) -> List[Dict[str, Any]]:
    """The shot's versions as a forest: each node lists the versions chained from it (parent links)."""
    rows = sorted(renders, key=lambda r: r.version)
    ids = {r.id for r in rows}
    nodes = {r.id: {"id": r.id, "version": r.version, "state": r.state, "approved": r.approved,
                    "parent": r.parent or "", "children": []} for r in rows}
    roots = []
    for r in rows:
        if r.parent and r.parent in ids:
            nodes[r.parent]["children"].append(nodes[r.id])
        else:
            roots.append(nodes[r.id])
    return roots


def settings_diff(a: cat.RenderRow, b: cat.RenderRow) -> List[Dict[str, Any]]:
    """Every setting that differs between two versions, options flattened to options.NAME."""

    def flat(r: cat.RenderRow) -> Dict[str, Any]:
        s = r.settings
        out = {k: s.get(k) for k in DIFF_KEYS}
        out.update({f"options.{k}": v for k, v in dict(s.get("options") or {}).items()})
        out["parent"] = r.parent or ""
        out["reference"] = r.reference_digest
        out["lane"] = r.lane
        out["frames"] = f"{r.frames[0].frame}-{r.frames[-1].frame} ({len(r.frames)})" if r.frames else ""
        return out

    fa, fb = flat(a), flat(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return [{"key": k, "a": fa.get(k), "b": fb.get(k)} for k in keys if fa.get(k) != fb.get(k)]


def stats(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Device time per user, per project and per shot, from catalog.device_seconds rows."""

    def total(key: Any) -> List[Dict[str, Any]]:
        sums: Dict[Any, Dict[str, Any]] = {}
        for row in rows:
            k = key(row)
            entry = sums.setdefault(k, {"seconds": 0.0, "renders": 0, "frames": 0})
            entry["seconds"] += float(row["seconds"] or 0)
            entry["renders"] += int(row["renders"] or 0)
            entry["frames"] += int(row["frames"] or 0)
        return [{"name": k, **{**v, "seconds": round(v["seconds"], 3)}}
                for k, v in sorted(sums.items(), key=lambda kv: -kv[1]["seconds"])]

    return {
        "by_user": total(lambda r: r["user"] or "(single user)"),
        "by_project": total(lambda r: r["project"]),
        "by_shot": total(lambda r: f"{r['project']}/{r['shot']}"),
        "total_seconds": round(sum(float(r["seconds"] or 0) for r in rows), 3),
    }


def queue_entry(r: cat.RenderRow, position: int, may_change: bool) -> Dict[str, Any]:
    out = render_json(r, may_change, frames=False)
    out["position"] = position
    out["frames"] = [{"frame": f.frame, "state": f.state} for f in r.frames]
    return out


def event_json(e: cat.EventRow, project: Optional[str] = None) -> Dict[str, Any]:
    """One event as WatchRender sends it (the same catalog rows), as a JSON object."""
    return {"render_id": e.render_id, "seq": e.seq, "time": e.time, "kind": e.kind, **e.body,
            **({"project": project} if project else {})}
