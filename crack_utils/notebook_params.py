"""Stop a notebook run whose parameters the notebook does not declare.

papermill injects every ``-p NAME value`` it is given, declared or not, with a mere warning; a misspelt
name (``-p DATA_ROOOT ...``) then leaves the real parameter at its default. Each notebook calls
:func:`check_parameters` right after its parameters, so a direct papermill run stops with the valid
names. Parameters are the upper-case names assigned in the cell tagged ``parameters``.
"""
from __future__ import annotations

import ast
import difflib
import json
import re
from pathlib import Path

from crack_utils.paths import repo_root

_PARAMETER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class UnknownParameterError(ValueError):
    """A notebook was given a parameter it does not declare; the message lists the declared ones."""


def declared_parameters(notebook: str | Path) -> list[str]:
    """Names assigned in the ``parameters``-tagged cell of ``notebook`` (a path, or a stem such as
    ``"01_clean_data"`` under ``notebooks/``), in order."""
    path = Path(notebook)
    if path.suffix != ".ipynb":
        path = repo_root() / "notebooks" / f"{path.name}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"notebook {path} not found")
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise ValueError(f"{path} has no cell tagged 'parameters'")
    names = []
    for node in ast.parse("".join(tagged[0]["source"])).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


def check_parameters(namespace: dict, notebook: str | Path) -> None:
    """Raise :class:`UnknownParameterError` if ``namespace`` (the notebook's ``globals()``) holds an
    upper-case name that ``notebook`` does not declare as a parameter; the message suggests the closest
    declared name and lists them all."""
    declared = declared_parameters(notebook)
    unknown = sorted(k for k in namespace if _PARAMETER_NAME.match(k) and k not in declared)
    if unknown:
        guesses = [f"{k} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(k, declared, n=1)) else k
                   for k in unknown]
        raise UnknownParameterError(
            f"{Path(notebook).stem} has no parameter(s) {', '.join(guesses)}; it declares: {', '.join(declared)}")
