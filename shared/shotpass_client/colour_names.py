"""A host's colour space name (its OCIO config's) as the server's colour config names it.

Hosts speak their own config: Nuke's nuke-default has `linear` (Rec.709 primaries, linear; *not*
ACEScg), `sRGB`, `Gamma2.2`...; ACES 1.x configs say `ACES - ACEScg`, `Utility - Linear - sRGB`; the
server runs the OCIO CG config (`ACEScg`, `Linear Rec.709 (sRGB)`, `sRGB Encoded Rec.709 (sRGB)`...).
A name with no true equivalent (a camera log curve the server's config lacks) is an error the user can
act on, never a silent guess.
"""

from __future__ import annotations

from typing import Dict, Sequence

# Host names (lowercased) -> the CG config's names, for the spaces that are the same encoding and primaries.
EQUIVALENTS: Dict[str, str] = {
    # nuke-default
    "linear": "Linear Rec.709 (sRGB)",
    "srgb": "sRGB Encoded Rec.709 (sRGB)",
    "gamma1.8": "Gamma 1.8 Encoded Rec.709",
    "gamma2.2": "Gamma 2.2 Encoded Rec.709",
    "gamma2.4": "Gamma 2.4 Encoded Rec.709",
    "bt1886": "Gamma 2.4 Encoded Rec.709",
    "raw": "Raw",
    # ACES 1.x studio configs
    "utility - linear - srgb": "Linear Rec.709 (sRGB)",
    "utility - linear - rec.709": "Linear Rec.709 (sRGB)",
    "utility - linear - rec.2020": "Linear Rec.2020",
    "utility - linear - p3-d65": "Linear P3-D65",
    "utility - srgb - texture": "sRGB Encoded Rec.709 (sRGB)",
    "utility - raw": "Raw",
    "acescg": "ACEScg",
    # OCIO roles and the CG config's own aliases
    "lin_rec709": "Linear Rec.709 (sRGB)",
    "lin_srgb": "Linear Rec.709 (sRGB)",
    "srgb_tx": "sRGB Encoded Rec.709 (sRGB)",
    "lin_ap1": "ACEScg",
    "lin_ap0": "ACES2065-1",
    "lin_p3d65": "Linear P3-D65",
    "lin_rec2020": "Linear Rec.2020",
}


class ColourNameError(ValueError):
    pass


def server_colour_space(host_space: str, server_spaces: Sequence[str]) -> str:
    """The server's name for a host colour space (exact, an ACES-style "Family - Name", or a known equivalent)."""
    name = host_space.strip()
    if name.lower().startswith("default (") and name.endswith(")"):  # Nuke: "default (linear)"
        name = name[len("default ("):-1]
    by_lower = {s.lower(): s for s in server_spaces}
    for candidate in (name, name.split("/")[-1], name.split(" - ")[-1] if name.lower().startswith("aces - ") else ""):
        if candidate and candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    for candidate in (name, name.split("/")[-1]):
        equivalent = EQUIVALENTS.get(candidate.lower())
        if equivalent and equivalent.lower() in by_lower:
            return by_lower[equivalent.lower()]
    raise ColourNameError(
        f"colour space {host_space!r} has no equivalent in the server's colour config; convert the plate to a "
        f"linear space first or pick one of: {', '.join(s for s in server_spaces if ' - Display' not in s)}"
    )
