"""Which patches of the cropped sets are kept (SOURCES.md, "Selection here").

The origin repository cut each photo into a grid (patch index < grid², no overlap) plus randomly placed
crops (index >= grid²) and kept only patches with enough crack pixels. The shared copy keeps **grid patches
only**, and for DeepCrack and CRACK500 **at most 8 and 6 per source photo**, drawn with ``random.Random(20240601)``:
photos in sorted order, only photos with more patches than the cap draw, each with ``rng.sample(patches, cap)``
over its patches sorted by (index, origin split). This rule reproduces the shared selection exactly (all 327
capped DeepCrack photos and all 455 capped CRACK500 photos; checked by ``make real-data``).

A patch id is ``<photo>-<index>``; when the draw keeps one name from two origin splits, the copy drawn
second gets the suffix ``_<split>`` (5 DeepCrack and 3 CRACK500 ids; :func:`patch_ids`).
"""
from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass

PATCH_NAME = re.compile(r"^(?P<photo>.+)-(?P<index>\d+)\.jpg$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Patch:
    """One patch file of the origin: ``Datasets/<folder>/<split>/<photo>-<index>.jpg``."""
    index: int
    split: str
    photo: str

    @property
    def name(self) -> str:
        return f"{self.photo}-{self.index}"


def parse_patch(split: str, file_name: str) -> Patch | None:
    """The :class:`Patch` of a file name ``<photo>-<index>.jpg`` (None for other names)."""
    match = PATCH_NAME.match(file_name)
    return Patch(int(match["index"]), split, match["photo"]) if match else None


def grid_patches(patches, grid: int) -> dict[str, list[Patch]]:
    """Grid patches (index < ``grid``²) by photo, each photo's list sorted by (index, split)."""
    by_photo: dict[str, list[Patch]] = defaultdict(list)
    for patch in patches:
        if patch.index < grid * grid:
            by_photo[patch.photo].append(patch)
    return {photo: sorted(found, key=lambda p: (p.index, p.split)) for photo, found in sorted(by_photo.items())}


def cap_per_photo(by_photo: dict[str, list[Patch]], cap: int | None, seed: int) -> list[Patch]:
    """At most ``cap`` patches of each photo (all when ``cap`` is None or a photo has no more), drawn by one
    ``random.Random(seed)`` over the photos in sorted order; photos at or under the cap draw nothing. The
    list is in the order of the draw (a drawn photo's patches as ``rng.sample`` returns them), which
    :func:`patch_ids` needs."""
    rng = random.Random(seed)
    kept = []
    for photo in sorted(by_photo):
        found = by_photo[photo]
        kept += rng.sample(found, cap) if cap is not None and len(found) > cap else found
    return kept


def patch_ids(kept: list[Patch]) -> dict[Patch, str]:
    """The pair id of each kept patch (``kept`` in the order of :func:`cap_per_photo`): ``<photo>-<index>``.
    When one name is kept from two origin splits (the origin resized each split to its own average size, so
    the two files differ), the copy that comes first in ``kept`` keeps the name and the other gets
    ``_<split>`` appended."""
    ids, taken = {}, set()
    for p in kept:
        ids[p] = p.name if p.name not in taken else f"{p.name}_{p.split}"
        taken.add(p.name)
    return ids
