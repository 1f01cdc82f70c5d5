"""Where a study's data comes from: generated synthetic data, or the user's folder (read, never written).

Synthetic data is generated under the data run's own folder (``<OUT_DIR>/synthetic/<name>``, i.e.
``results/<study>/01_data/synthetic/`` in a pipeline run), never into a folder the study reads. A user's
folder (``DATA_SOURCE = "folder"``) is only read: the data notebook refuses to write its outputs inside it.
"""
from __future__ import annotations

import os
from pathlib import Path

from crack_utils.datasets import DatasetError
from crack_utils.paths import from_repo

SOURCES = ("synthetic", "folder")
SYNTHETIC_SUBDIR = "synthetic"


def synthetic_name(n_images: int, size: int, seed: int) -> str:
    """Folder name of a synthetic dataset, e.g. ``n40-s96-seed1``."""
    return f"n{n_images}-s{size}-seed{seed}"


def _inside(path: Path, folder: Path) -> bool:
    path, folder = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return path == folder or folder in path.parents


def resolve_data_source(source: str, root: str | None, datasets, out_dir: str | Path, n_images: int = 120,
                        size: int = 192, seed: int = 0, crack_free_fraction: float = 0.15,
                        progress: bool = True) -> tuple[Path, list[str] | str, str]:
    """``(data_root, datasets, label)`` for the data notebook; generates the synthetic data if asked.

    ``source="synthetic"``: generate ``n_images`` seeded pairs into ``out_dir/synthetic/<name>`` (``root``
    must be None and ``datasets`` ``"all"``: giving a folder without ``source="folder"`` is an error, not
    a surprise). ``source="folder"``: read ``root`` (relative paths are relative to the repository root);
    ``out_dir`` must not lie inside it. ``label`` says where the data came from, for the summary.
    """
    if source == "synthetic":
        if root is not None:
            raise ValueError(
                f"DATA_ROOT (data.root) is {root!r} but DATA_SOURCE (data.source) is 'synthetic', which generates "
                "its own data and reads no folder. To read your folder set DATA_SOURCE = 'folder' (papermill: "
                "-p DATA_SOURCE folder; config: data.source: folder); for synthetic data leave DATA_ROOT unset.")
        if datasets != "all":
            raise ValueError(f"DATASETS (data.datasets) is only read with DATA_SOURCE = 'folder', got {datasets!r}")
        from crack_utils.synthetic import generate_dataset

        data_root = from_repo(out_dir) / SYNTHETIC_SUBDIR
        name = synthetic_name(n_images, size, seed)
        generate_dataset(data_root / name, n_images=n_images, size=size, seed=seed,
                         crack_free_fraction=crack_free_fraction, progress=progress)
        return data_root, [name], f"synthetic data {name}, generated into this run's {SYNTHETIC_SUBDIR}/ folder"
    if source == "folder":
        if root is None:
            raise ValueError("DATA_SOURCE (data.source) is 'folder' but DATA_ROOT (data.root) is not set; give the "
                             "folder that holds images/ + masks/, a folder of such dataset folders, or the "
                             "Kaggle train|test/images|masks layout")
        data_root = from_repo(root)
        if not data_root.is_dir():
            raise DatasetError(f"data root {root} ({data_root}) does not exist or is not a folder; "
                               "check data.root (DATA_ROOT)")
        if _inside(from_repo(out_dir), data_root):
            raise ValueError(f"OUT_DIR {out_dir} lies inside DATA_ROOT {root}; the data notebook never writes "
                             "into a folder it reads. Choose an OUT_DIR outside the data (e.g. under results/)")
        return data_root, datasets, str(root)
    raise ValueError(f"DATA_SOURCE (data.source) must be one of {', '.join(SOURCES)}, got {source!r}")
