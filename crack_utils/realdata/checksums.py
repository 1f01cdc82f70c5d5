"""The checksum list of the real data and the comparison of a copy against it.

``data/real_data_sha256.csv.gz`` (committed) has one row per file of the six dataset folders the study used
(images, masks and ``meta.csv``): ``path`` (``<dataset>/images/<file>``, relative to the data root),
``size`` (bytes), ``sha256`` and, for masks, ``pixels_sha256``: the SHA-256 of the decoded pixels (shape
and values). A copy *matches* a dataset when it has exactly these files with these bytes;
:func:`compare` names every missing, extra and changed file. A mask whose PNG bytes differ but whose
pixels are the same (another zlib or PNG encoder, e.g. on another operating system) is not a difference:
it is reported as ``same pixels``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from crack_utils.paths import repo_root
from crack_utils.realdata.origins import DATASETS

CHECKSUM_LIST = Path("data") / "real_data_sha256.csv.gz"
COLUMNS = ["path", "size", "sha256", "pixels_sha256"]
MASKS = "/masks/"
#: Files of a data root that are not data: the provenance notes beside the datasets.
NOT_DATA = ("SOURCES.md",)


def checksum_list_path() -> Path:
    return repo_root() / CHECKSUM_LIST


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pixels_sha256(path: str | Path) -> str:
    """SHA-256 of an image's decoded pixels: its mode, size and bytes (independent of the file encoding)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        pixels = np.asarray(im)
        header = f"{im.mode} {im.width}x{im.height} ".encode()
    return hashlib.sha256(header + pixels.tobytes()).hexdigest()


def file_table(root: str | Path, datasets=None, pixels: bool = False) -> pd.DataFrame:
    """Every file under ``root/<dataset>/`` for the six datasets (or ``datasets``): columns
    :data:`COLUMNS`, sorted by path (``pixels_sha256`` of the PNG masks only with ``pixels``: decoding every
    mask takes a while, and :func:`compare` needs it only for the list). Hidden files (``.DS_Store``) are
    files too: a copy is compared as it is."""
    root = Path(root)
    rows = []
    for dataset in datasets or DATASETS:
        folder = root / dataset
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() or path.is_symlink():
                rel = path.relative_to(root).as_posix()
                if not path.exists():  # a broken link: a file of the copy without bytes
                    rows.append({"path": rel, "size": -1, "sha256": "broken link", "pixels_sha256": ""})
                else:
                    mask = pixels and MASKS in rel and path.suffix.lower() == ".png"
                    rows.append({"path": rel, "size": path.stat().st_size, "sha256": sha256_file(path),
                                 "pixels_sha256": pixels_sha256(path) if mask else ""})
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("path", ignore_index=True)


def read_list(path: str | Path | None = None) -> pd.DataFrame:
    """The committed checksum list (or the one at ``path``)."""
    table = pd.read_csv(path or checksum_list_path(), dtype={"path": str, "size": "int64", "sha256": str,
                                                             "pixels_sha256": str}, keep_default_na=False)
    if "pixels_sha256" not in table:
        table["pixels_sha256"] = ""
    return table


def write_list(table: pd.DataFrame, path: str | Path | None = None) -> Path:
    """Write a checksum list (gzip-compressed CSV; byte-stable: no timestamp in the gzip header)."""
    import gzip

    path = Path(path or checksum_list_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    text = table[COLUMNS].sort_values("path").to_csv(index=False, lineterminator="\n")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        handle.write(text.encode("utf-8"))
    return path


def dataset_of(path: str) -> str:
    return path.split("/", 1)[0]


def compare(expected: pd.DataFrame, actual: pd.DataFrame, root: str | Path | None = None) -> pd.DataFrame:
    """Every difference between two file tables: columns ``dataset, path, status, detail`` with status
    ``missing`` (listed, absent from the copy), ``extra`` (in the copy, not listed), ``changed`` (other
    size or bytes) or ``same pixels`` (a mask with other PNG bytes but the listed pixels: not a
    difference, see :func:`differences`); empty when the copy matches byte for byte. ``actual`` needs no
    ``pixels_sha256``: a mask's pixels are hashed from ``root`` only when its bytes differ."""
    merged = expected.merge(actual[["path", "size", "sha256"]], on="path", how="outer",
                            suffixes=("_expected", "_actual"), indicator="side")
    rows = []
    for row in merged.to_dict("records"):
        if row["side"] == "left_only":
            status, detail = "missing", f"{int(row['size_expected'])} bytes expected"
        elif row["side"] == "right_only":
            status, detail = "extra", f"{int(row['size_actual'])} bytes, not in the list"
        elif row["sha256_expected"] != row["sha256_actual"]:
            listed_pixels = row.get("pixels_sha256") or ""
            if (listed_pixels and root is not None and row["sha256_actual"] != "broken link"
                    and pixels_sha256(Path(root) / row["path"]) == listed_pixels):
                status, detail = "same pixels", "other PNG bytes (another encoder), the same mask"
            else:
                status = "changed"
                size_a, size_e = int(row["size_actual"]), int(row["size_expected"])
                detail = ("a broken symbolic link" if row["sha256_actual"] == "broken link" else
                          f"{size_a} bytes, {size_e} expected" if size_a != size_e
                          else f"same size ({size_a} bytes), other bytes (SHA-256 {row['sha256_actual'][:12]}..., "
                               f"expected {row['sha256_expected'][:12]}...)")
        else:
            continue
        rows.append({"dataset": dataset_of(row["path"]), "path": row["path"], "status": status, "detail": detail})
    return pd.DataFrame(rows, columns=["dataset", "path", "status", "detail"])


def differences(compared: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`compare` that make a copy differ (everything but ``same pixels``)."""
    return compared[compared["status"] != "same pixels"]


def dataset_verdicts(expected: pd.DataFrame, differences: pd.DataFrame, root: str | Path) -> pd.DataFrame:
    """Per dataset of the list: ``files`` listed, ``missing``, ``extra``, ``changed``, ``present`` (its folder
    exists under ``root``) and ``matches``."""
    rows = []
    for dataset, listed in expected.groupby(expected["path"].map(dataset_of), sort=False):
        mine = differences[(differences["dataset"] == dataset) & (differences["status"] != "same pixels")]
        counts = mine["status"].value_counts()
        row = {"dataset": dataset, "files": len(listed), "present": (Path(root) / dataset).is_dir(),
               **{s: int(counts.get(s, 0)) for s in ("missing", "extra", "changed")}}
        row["matches"] = row["present"] and not len(mine)
        rows.append(row)
    return pd.DataFrame(rows)


def studies_of_data(matching: set[str], configs_dir: str | Path | None = None) -> dict[str, list[str]]:
    """Which study configs read only datasets that match: ``{"reproduces": [...], "not": [...]}`` over the
    configs under ``configs/`` that read a folder of these datasets (``data.source: folder`` with
    ``datasets`` among the six, or ``all``)."""
    from crack_utils.study.config import ConfigError, load_config

    configs_dir = Path(configs_dir or repo_root() / "configs")
    out: dict[str, list[str]] = {"reproduces": [], "not": []}
    for path in sorted(configs_dir.glob("*.yaml")):
        try:
            config = load_config(path)
        except ConfigError:  # a config that does not load says nothing about the data
            continue
        if config["data"]["source"] != "folder":
            continue
        wanted = config["data"]["datasets"]
        wanted = set(DATASETS) if wanted == "all" else set(wanted)
        if not wanted <= set(DATASETS):
            continue
        name = config["name"]
        group = out["reproduces" if wanted <= matching else "not"]
        if name not in group:
            group.append(name)
    return out
