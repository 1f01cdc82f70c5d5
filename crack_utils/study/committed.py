"""What the committed copy of a study keeps, so the repository stays small enough to carry (issue 26).

A study run leaves everything on disk. Committing all of it would make the repository too large. Every
device call carries the tracked tree, and a call carries at most 64 MiB. So, before results are committed,
``python -m crack_utils.study.committed results/<study>`` (``make slim``) does three things:

* **compresses the large per-run tables** (:data:`COMPRESSED_TABLES`: ``01_data/manifest.csv``,
  ``02_distance/distance_stats.csv`` and each evaluation's ``per_image.csv`` and ``claims.csv``) into
  ``<table>.xz`` beside them. The ``.xz`` copy is committed and the plain one is git-ignored.
  :func:`read_table` reads either (the newer when both exist), so readers work the same in a fresh clone
  and in a working study. xz, not gzip: 10x smaller on these CSVs. Columns that the table's other columns
  determine (:data:`DERIVED_COLUMNS`: an image's five scores from its counts, the far-FP shares from the
  far-FP counts, ...) are left blank in the ``.xz`` copy and recomputed on reading (:func:`expand_table_bytes`),
  where that gives back the exact bytes the evaluation wrote (checked when the copy is written; else the
  whole table is kept): 4x smaller for ``per_image.csv``;
* **strips image outputs from the executed notebooks** of the study's run folders. Each figure is replaced
  by a line that says where it went: the study's figures are PNG files beside them, and a rerun of the
  notebook redraws the rest;
* **stores the study's figures with a 256-colour palette** (:func:`palette_figure`: matplotlib's RGBA PNGs
  of plots and of the test images beside their masks; about half the bytes, no visible change). A
  figure already in palette mode is left alone, and a rerun of the report writes full-colour figures again;
* leaves the report's published files only at the study root. The copies in ``05_report/`` are git-ignored,
  except what the report stage needs to count as up to date and to rerun (its executed notebook,
  ``run_metadata.json`` and ``test_split.npz``). Also git-ignored: each training's ``training_curve.png``
  (the study's ``training_curves.png`` and each ``history.csv`` hold the same), and the predictions of the
  training-length budgets (``<loss>-epoch<k>-seed<s>``), which the report does not read.

Nothing here changes a result or a run's fingerprint (:mod:`.freshness` hashes the source notebooks, not
the executed ones). :data:`MAX_TRACKED_BYTES` and :data:`MAX_FILE_BYTES` are the limits a test holds the
tracked tree to.
"""
from __future__ import annotations

import argparse
import lzma
import subprocess
import sys
from pathlib import Path

import pandas as pd

from crack_utils.claims import derived_claim_columns
from crack_utils.metrics import derived_score_columns
from crack_utils.study import layout

#: Tables (globs relative to a study folder) committed as ``<table>.xz`` instead of plain CSV.
COMPRESSED_TABLES = (f"{layout.DATA}/manifest.csv", f"{layout.DISTANCE}/distance_stats.csv",
                     f"{layout.EVALUATE}/*/per_image.csv", f"{layout.EVALUATE}/*/claims.csv")
XZ = ".xz"
#: The tracked tree and any one tracked file must stay under these. Every device call carries the tree, and
#: one call holds 60 MiB (:data:`crack_utils.tools.device_call.CALL_LIMIT_BYTES`): the GPU run's encoded data
#: parts (:data:`~crack_utils.tools.device_call.DATA_PARTS_BYTES`) fit one call beside a tree of up to 28.9 MiB,
#: the wheels beside one of 34.7, so under this limit the run stays at two calls (tests/test_device_call.py).
#: 24 MiB until 2026-12-07, when the converged study's 63 evaluations (issue 25) were about to take the tree
#: to ~27 MiB.
MAX_TRACKED_BYTES = 28 * 2**20
MAX_FILE_BYTES = 2 * 2**20
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
STRIPPED = ("[figure not kept in the committed copy of this notebook (crack_utils.study.committed); "
            "the study's figures are PNG files in its results folder, and rerunning the notebook redraws it]")


#: The tables whose committed copy leaves blank the columns their other columns determine, and the function
#: that recomputes those columns from a table: notebook 04's two per-image tables.
DERIVED_COLUMNS = {"per_image.csv": derived_score_columns, "claims.csv": derived_claim_columns}


def expand_table_bytes(name: str, data: bytes) -> bytes:
    """The CSV bytes of table ``name`` (e.g. ``"per_image.csv"``) with every column of :data:`DERIVED_COLUMNS`
    that ``data`` leaves blank (all empty) recomputed from the other columns; ``data`` itself when none is
    blank or the table has no derived columns."""
    import io

    if name not in DERIVED_COLUMNS:
        return data
    table = pd.read_csv(io.BytesIO(data))
    derived = DERIVED_COLUMNS[name](table)
    blank = [c for c in derived if c in table.columns and table[c].isna().all()]
    if not blank:
        return data
    for column in blank:
        table[column] = derived[column]
    return table.to_csv(index=False).encode()


def compact_table_bytes(name: str, data: bytes) -> bytes:
    """What the committed copy of table ``name`` holds: ``data`` with its derived columns
    (:data:`DERIVED_COLUMNS`) blank, when :func:`expand_table_bytes` gives ``data`` back byte for byte;
    else ``data`` unchanged."""
    import io

    if name not in DERIVED_COLUMNS:
        return data
    table = pd.read_csv(io.BytesIO(data))
    derived = [c for c in DERIVED_COLUMNS[name](table) if c in table.columns]
    if not derived or table.empty:
        return data
    compact = table.copy()
    compact[derived] = float("nan")
    packed = compact.to_csv(index=False).encode()
    return packed if expand_table_bytes(name, packed) == data else data


def table_path(path: str | Path) -> Path:
    """``path`` or its committed ``.xz`` copy, whichever exists; the newer of the two when both do (a
    ``git pull`` that brings a new ``.xz`` must win over a stale local plain copy, and a new execution's
    plain table over an old ``.xz``); ``path`` when neither exists (so a caller's "not found" names it)."""
    path = Path(path)
    packed = path.with_name(path.name + XZ)
    if path.is_file() and packed.is_file():
        return packed if packed.stat().st_mtime > path.stat().st_mtime else path
    return packed if packed.is_file() else path


def table_exists(path: str | Path) -> bool:
    return table_path(path).is_file()


def read_table(path: str | Path, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` of a table or of its committed ``.xz`` copy (:func:`table_path`), derived columns
    recomputed (:func:`table_bytes`); FileNotFoundError naming ``path`` when neither exists."""
    import io

    if not table_exists(path):
        raise FileNotFoundError(f"{path} not found (nor its committed copy {Path(path).name}{XZ})")
    return pd.read_csv(io.BytesIO(table_bytes(path)), **kwargs)


def table_bytes(path: str | Path) -> bytes:
    """The plain CSV bytes of a table as its notebook wrote them, decompressing the ``.xz`` copy when only
    that exists (or it is the newer) and recomputing the columns it leaves blank (:func:`expand_table_bytes`)."""
    found = table_path(path)
    data = found.read_bytes()
    if found.name.endswith(XZ):
        data = expand_table_bytes(Path(path).name, lzma.decompress(data))
    return data


def compress_tables(study: str | Path) -> list[Path]:
    """Write ``<table>.xz`` (:func:`compact_table_bytes`, xz) for each table of :data:`COMPRESSED_TABLES` in
    ``study`` whose ``.xz`` copy is missing or holds other content — from the plain table, or from the
    ``.xz`` copy itself when only that exists (so a committed copy written before its derived columns were
    left out is rewritten compact, with the same content); returns the copies written."""
    written = []
    for pattern in COMPRESSED_TABLES:
        plain_tables = set(Path(study).glob(pattern)) | {p.with_name(p.name[:-len(XZ)]) for p in Path(study).glob(pattern + XZ)}
        for plain in sorted(plain_tables):
            packed = plain.with_name(plain.name + XZ)
            stored = lzma.decompress(packed.read_bytes()) if packed.is_file() else None
            data = table_bytes(plain)  # the newer of the plain table and the .xz copy, as written
            wanted = compact_table_bytes(plain.name, data)
            if stored == wanted:
                continue
            packed.write_bytes(lzma.compress(wanted, preset=9 | lzma.PRESET_EXTREME))
            written.append(packed)
    return written


def strip_images(notebook: str | Path) -> int:
    """Replace every image output of an executed notebook by :data:`STRIPPED` (text); returns how many
    outputs changed. The file is rewritten only when something changed."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if any(kind in data for kind in IMAGE_TYPES):
                output["data"] = {"text/plain": STRIPPED}
                output["metadata"] = {}
                changed += 1
    if changed:
        nbformat.write(nb, str(notebook))
    return changed


def palette_figure(path: str | Path) -> bool:
    """Rewrite the PNG ``path`` with a 256-colour palette (median cut, no dithering, white for transparent
    pixels) when that makes it smaller; returns whether it was rewritten. A palette PNG is left alone, so a
    second call changes nothing."""
    import io

    from PIL import Image

    path = Path(path)
    with Image.open(path) as image:
        if image.mode == "P":
            return False
        rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat = Image.alpha_composite(white, rgba).convert("RGB")
    packed = io.BytesIO()
    flat.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(packed, "PNG", optimize=True)
    if packed.tell() >= path.stat().st_size:
        return False
    path.write_bytes(packed.getvalue())
    return True


def slim_study(study: str | Path) -> dict[str, int]:
    """:func:`compress_tables`, :func:`strip_images` on every executed notebook of the study's run folders and
    :func:`palette_figure` on the figures at the study root; returns counts."""
    study = Path(study)
    tables = compress_tables(study)
    figures = sum(strip_images(nb) for nb in sorted(study.glob("*/**/*.ipynb")) if ".tmp-" not in str(nb))
    palettes = sum(palette_figure(png) for png in sorted(study.glob("*.png")))
    return {"tables": len(tables), "figures": figures, "palettes": palettes}


def tracked_sizes(repo: str | Path, untracked: bool = False) -> pd.DataFrame:
    """Every file git tracks in ``repo`` (working-tree bytes), with ``untracked`` also the untracked files
    git does not ignore (what a device call carries besides its ``carry`` paths): columns ``path``, ``bytes``."""
    others = ["--others", "--exclude-standard"] if untracked else []
    names = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", *others], check=True,
                           capture_output=True).stdout
    rows = []
    for name in names.decode().split("\0"):
        if name and (Path(repo) / name).is_file():
            rows.append({"path": name, "bytes": (Path(repo) / name).stat().st_size})
    return pd.DataFrame(rows, columns=["path", "bytes"])


def size_report(repo: str | Path) -> tuple[str, bool]:
    """Lines on the tracked tree's size per top folder and per study, and whether it is within the limits."""
    sizes = tracked_sizes(repo)
    total = int(sizes["bytes"].sum())
    big = sizes[sizes["bytes"] > MAX_FILE_BYTES]
    parts = sizes["path"].str.split("/")
    sizes["where"] = [("/".join(p[:2]) if p[0] == layout.RESULTS and len(p) > 2 else p[0]) for p in parts]
    lines = [f"tracked tree: {total / 2**20:.1f} MiB in {len(sizes)} files (limit {MAX_TRACKED_BYTES / 2**20:.0f} MiB, "
             f"{MAX_FILE_BYTES / 2**20:.0f} MiB per file)"]
    for where, group in sizes.groupby("where")["bytes"].agg(["sum", "count"]).sort_values("sum", ascending=False).iterrows():
        lines.append(f"  {where:<36} {group['sum'] / 2**20:6.2f} MiB  {group['count']:5d} files")
    for row in big.itertuples(index=False):
        lines.append(f"  OVER {MAX_FILE_BYTES / 2**20:.0f} MiB: {row.path} ({row.bytes / 2**20:.2f} MiB)")
    return "\n".join(lines), total <= MAX_TRACKED_BYTES and big.empty


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crack_utils.study.committed",
                                     description="Slim studies before committing them; check the tracked tree's size.")
    parser.add_argument("studies", nargs="*", help="study folders to slim, e.g. results/seeds")
    parser.add_argument("--check", action="store_true", help="print the tracked tree's size; exit 1 over the limits")
    args = parser.parse_args(argv)
    for study in args.studies:
        counts = slim_study(study)
        print(f"{study}: {counts['tables']} table(s) compressed, {counts['figures']} figure(s) stripped, "
              f"{counts['palettes']} figure(s) given a palette")
    if args.check or not args.studies:
        from crack_utils.paths import repo_root

        text, ok = size_report(repo_root())
        print(text)
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
