"""Frame patterns (name.####.exr, name.%04d.exr, name.$F4.exr, name.@@@@.exr) and frame ranges (1001-1100x2)."""

from __future__ import annotations

import os
import re
from typing import Dict, Iterable, List, Optional

_TOKENS = [
    (re.compile(r"#+"), lambda m: len(m.group(0))),
    (re.compile(r"@+"), lambda m: len(m.group(0))),
    (re.compile(r"%(0?(\d+))?d"), lambda m: int(m.group(2) or 1)),
    (re.compile(r"\$F(\d?)"), lambda m: int(m.group(1) or 1)),
]
# A plain file name whose last digit run before the extension is the frame number: shot.1001.exr
_NUMBERED = re.compile(r"^(.*?)(-?\d+)(\.[A-Za-z0-9]+)$")
# A file name with no frame number at all (matte.exr) is a still: one frame, this number unless one is given.
_STILL = re.compile(r"^(.+?)(\.[A-Za-z0-9]+)$")
STILL_FRAME = 1


class PatternError(ValueError):
    pass


class FramePattern:
    """A file-sequence pattern: a prefix, a zero-padded frame number and a suffix."""

    def __init__(self, prefix: str, padding: int, suffix: str, still: bool = False) -> None:
        self.prefix = prefix
        self.padding = padding
        self.suffix = suffix
        self.still = still  # one un-numbered file: every frame number names that same file

    @classmethod
    def parse(cls, text: str) -> FramePattern:
        """Accept ####, @@@@, %04d, $F4, or a numbered file name (shot.1001.exr: its own padding)."""
        directory, name = os.path.split(text)
        for regex, width in _TOKENS:
            matches = list(regex.finditer(name))
            if matches:
                m = matches[-1]
                return cls(os.path.join(directory, name[: m.start()]), width(m), name[m.end():])
        m = _NUMBERED.match(name)
        if m:
            digits = m.group(2).lstrip("-")
            return cls(os.path.join(directory, m.group(1)), len(digits), m.group(3))
        m = _STILL.match(name)
        if m:
            return cls(os.path.join(directory, m.group(1)), 0, m.group(2), still=True)
        raise PatternError(
            f"{text}: not a frame pattern; use name.####.exr, name.%04d.exr or name.$F4.exr (or a file name.exr)"
        )

    def path(self, frame: int) -> str:
        if self.still:
            return self.prefix + self.suffix
        sign = "-" if frame < 0 else ""
        return f"{self.prefix}{sign}{abs(frame):0{self.padding}d}{self.suffix}"

    def hashes(self) -> str:
        """The pattern written with #### (Nuke's Read knob style); a still is its own file name."""
        return f"{self.prefix}{'#' * self.padding}{self.suffix}"

    def printf(self) -> str:
        return self.prefix + self.suffix if self.still else f"{self.prefix}%0{self.padding}d{self.suffix}"

    def with_directory(self, directory: str) -> FramePattern:
        return FramePattern(os.path.join(directory, os.path.basename(self.prefix)), self.padding, self.suffix,
                            self.still)

    def existing(self) -> Dict[int, str]:
        """Frames on disk that match this pattern, keyed by frame number (a still: frame STILL_FRAME)."""
        if self.still:
            return {STILL_FRAME: self.path(STILL_FRAME)} if os.path.isfile(self.path(STILL_FRAME)) else {}
        directory = os.path.dirname(self.prefix) or "."
        base = os.path.basename(self.prefix)
        rx = re.compile("^" + re.escape(base) + r"(-?\d+)" + re.escape(self.suffix) + "$")
        found: Dict[int, str] = {}
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            raise PatternError(f"{directory}: no such folder") from None
        for name in names:
            m = rx.match(name)
            # Files padded wider than the pattern still count (frame 10000 in a #### sequence).
            if m and len(m.group(1).lstrip("-")) >= self.padding:
                found[int(m.group(1))] = os.path.join(os.path.dirname(self.prefix), name)
        return dict(sorted(found.items()))

    def __repr__(self) -> str:
        return f"FramePattern({self.hashes()!r})"


def parse_frame_range(text: str) -> List[int]:
    """'1-8', '1001-1100x2', '1,3,5-7', '-3--1' -> sorted unique frame numbers."""
    frames = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.match(r"^(-?\d+)(?:-(-?\d+))?(?:x(\d+))?$", part)
        if not m:
            raise PatternError(f"frame range {part!r}: use 1001-1100, 1001-1100x2 or 1,3,5")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        step = int(m.group(3) or 1)
        if last < first or step < 1:
            raise PatternError(f"frame range {part!r}: the last frame is before the first, or the step is 0")
        frames.update(range(first, last + 1, step))
    if not frames:
        raise PatternError(f"frame range {text!r} holds no frames")
    return sorted(frames)


def format_frame_list(frames: Iterable[int]) -> str:
    """[1,2,3,5,7,9] -> '1-3,5-9x2' (compact, for messages and logs)."""
    nums = sorted(set(frames))
    out: List[str] = []
    i = 0
    while i < len(nums):
        j = i
        step: Optional[int] = nums[i + 1] - nums[i] if i + 1 < len(nums) else None
        while step and j + 1 < len(nums) and nums[j + 1] - nums[j] == step:
            j += 1
        if j - i >= 2 or (j - i == 1 and step == 1):
            out.append(f"{nums[i]}-{nums[j]}" + (f"x{step}" if step != 1 else ""))
            i = j + 1
        else:
            out.append(str(nums[i]))
            i += 1
    return ",".join(out)
