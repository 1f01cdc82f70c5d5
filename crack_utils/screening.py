"""Automatic label screening and the hand-kept exclusion list.

The paper "identified and manually removed" inaccurate labels without saying how. We flag pairs by
explicit rules on :func:`crack_utils.preprocess.label_statistics` (computed at study resolution), show
the flagged pairs in the data notebook for a person to confirm, and let people exclude more pairs in
``data/exclusions.csv`` (columns ``id, reason``; ``id`` may be ``dataset/id`` to be specific).

Default rules (each can be switched off by setting it to ``None``):

* ``not_darker``: crack pixels not darker than the rest (``darker_by <= min_darker_by``), a sign of a
  misaligned or wrong label; crack-free masks are not judged;
* ``crack_fraction``: more than ``max_crack_fraction`` of the image labelled crack;
* ``too_wide``: a label much wider than the dark structure it marks (coarse polygons): estimated width
  above ``max_width`` px at study resolution *and* a weak contrast (``darker_by < wide_min_darker_by``).
  Width alone is no reason: close-up patches (CRACK500) show genuinely wide, dark cracks.

Thresholds were set by looking at ../shared/data (the data notebook shows what each rule removes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_RULES = {"min_darker_by": 0.0, "max_crack_fraction": 0.5, "max_width": 6.0, "wide_min_darker_by": 10.0}


def screen_labels(stats: pd.DataFrame, min_darker_by: float | None = 0.0,
                  max_crack_fraction: float | None = 0.5, max_width: float | None = 6.0,
                  wide_min_darker_by: float = 10.0) -> pd.Series:
    """Reason per row (``""`` when the label passes), from a table with ``darker_by``,
    ``crack_fraction`` and ``mean_width`` columns. Several reasons are joined with ``"; "``."""
    reasons = [[] for _ in range(len(stats))]
    checks = []
    if min_darker_by is not None:
        checks.append((stats["darker_by"].to_numpy() <= min_darker_by, f"label not darker than background (darker_by <= {min_darker_by:g})"))
    if max_crack_fraction is not None:
        checks.append((stats["crack_fraction"].to_numpy() > max_crack_fraction, f"crack fraction > {max_crack_fraction:g}"))
    if max_width is not None:
        wide = (stats["mean_width"].to_numpy() > max_width) & (stats["darker_by"].to_numpy() < wide_min_darker_by)
        checks.append((wide, f"label wider than the dark crack (> {max_width:g} px, darker_by < {wide_min_darker_by:g})"))
    for flags, reason in checks:
        for i in np.flatnonzero(np.nan_to_num(flags, nan=False).astype(bool)):
            reasons[i].append(reason)
    return pd.Series(["; ".join(r) for r in reasons], index=stats.index, dtype=object)


def read_exclusions(path: str | Path) -> pd.DataFrame:
    """The hand-kept exclusion list (``id, reason``); an absent file means no exclusions."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=["id", "reason"])
    table = pd.read_csv(path, dtype=str, comment="#").fillna("")
    missing = {"id", "reason"} - set(table.columns)
    if missing:
        raise ValueError(f"{path} must have columns id, reason; missing {sorted(missing)}")
    return table


def manual_exclusion_reasons(manifest: pd.DataFrame, exclusions: pd.DataFrame) -> pd.Series:
    """Reason per manifest row from the exclusion list, matching ``id`` or ``dataset/id``."""
    by_key = {k: (r or "listed in the exclusion file") for k, r in zip(exclusions["id"], exclusions["reason"])}
    qualified = manifest["dataset"] + "/" + manifest["id"]
    out = [by_key.get(q, by_key.get(i)) for q, i in zip(qualified, manifest["id"])]
    return pd.Series(["manual: " + r if r else "" for r in out], index=manifest.index, dtype=object)
