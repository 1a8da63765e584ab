"""A render's quality checks as plain data, for every host: the flicker figure and the health checks.

The server measures them after a render's last frame (see the server's temporal/qc.py); hosts show
``qc_label`` in their version lists and ``qc_summary`` wherever they show details.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .proto import shotpass_pb2 as pb

# Above this the output flickers visibly more than the footage itself (a per-frame stylize reads 10 or more).
FLICKER_WARN = 2.0


def _pair(p: pb.FramePairQc) -> Dict[str, Any]:
    return {
        "frames": [int(p.frame_a), int(p.frame_b)],
        "ratio": round(p.ratio, 3),
        "source_error": round(p.source_error, 5),
        "output_error": round(p.output_error, 5),
        "trusted": round(p.trusted, 3),
    }


def qc_summary(render: pb.Render, pairs: bool = True) -> Optional[Dict[str, Any]]:
    """The render's QC as a dict (``flicker_ratio``, ``worst_pairs``...), or None while it is not measured.

    ``pairs=False`` leaves out the per-pair list (a host's stored version list keeps only the summary).
    """
    if not render.HasField("qc"):
        return None
    q = render.qc
    measured = q.flicker_ratio > 0
    return {
        "flicker_ratio": round(q.flicker_ratio, 3) if measured else None,
        "source_error": round(q.source_error, 5),
        "output_error": round(q.output_error, 5),
        "worst_pairs": [_pair(p) for p in q.worst_pairs],
        "pairs": [_pair(p) for p in q.pairs] if pairs else [],
        "nonfinite_outputs": int(q.nonfinite_outputs),
        "nonfinite_sources": int(q.nonfinite_sources),
        "contract_ok": not q.contract_errors,
        "contract_errors": list(q.contract_errors),
        "flow_source": q.flow_source,
        "seconds": round(q.seconds, 3),
    }


def qc_problems(summary: Optional[Dict[str, Any]]) -> List[str]:
    """What a supervisor should look at, in words (empty: nothing)."""
    if not summary:
        return []
    problems = []
    ratio = summary.get("flicker_ratio")
    if ratio is not None and ratio > FLICKER_WARN:
        worst = summary["worst_pairs"][0]["frames"] if summary.get("worst_pairs") else None
        where = f", worst at frames {worst[0]}-{worst[1]}" if worst else ""
        problems.append(f"flicker {ratio:.1f}x the footage's{where}")
    if summary.get("nonfinite_outputs"):
        problems.append(f"{summary['nonfinite_outputs']} NaN/Inf values in the outputs")
    problems.extend(summary.get("contract_errors", [])[:3])
    return problems


def qc_label(summary: Optional[Dict[str, Any]]) -> str:
    """Short text for a version list: 'flicker 1.3x', 'flicker 11.2x !', '' when not measured."""
    if not summary:
        return ""
    ratio = summary.get("flicker_ratio")
    text = f"flicker {ratio:.1f}x" if ratio is not None else ""
    if qc_problems(summary):
        text = (text + " !").strip()
    return text
