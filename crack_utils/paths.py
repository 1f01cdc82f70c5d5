"""Paths relative to the repository root, so notebooks work from papermill (cwd = repo root) and from
JupyterLab (cwd = notebooks/) alike, without ``os.chdir``."""
from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    """The repository root: the folder holding ``pyproject.toml`` above this package."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "pyproject.toml").is_file() and (folder / "crack_utils").is_dir():
            return folder
    raise FileNotFoundError("cannot find the repository root (a folder with pyproject.toml and crack_utils/)")


def from_repo(path: str | Path | None) -> Path | None:
    """``path`` as an absolute path; ``~`` is the home folder, other relative paths are taken relative to
    the repository root."""
    if path is None:
        return None
    path = Path(path).expanduser()
    return path if path.is_absolute() else repo_root() / path


def require(path: str | Path, what: str, hint: str) -> Path:
    """``from_repo(path)``, raising FileNotFoundError naming ``what`` and what to run when it is missing."""
    full = from_repo(path)
    if not full.exists():
        raise FileNotFoundError(f"{what} not found at {path}; {hint}")
    return full
