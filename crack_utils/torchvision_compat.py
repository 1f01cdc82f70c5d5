"""Make ``import torchvision`` (and so smp and timm) work next to a CPU-only torch.

The problem: the registry's torchvision 0.28.0 wheel is a CUDA build. Next to a CPU build of torch its
C++ extension (``torchvision/_C.so``) cannot load, which torchvision tolerates, but its
``_meta_registrations`` module then calls ``torch.library.register_fake("torchvision::nms")`` (and
``qnms``) unconditionally, and ``import torchvision`` fails with
``RuntimeError: operator torchvision::nms does not exist``.

The step: before torchvision is first imported, try to load the real extension exactly as torchvision
does. If it loads, nothing else happens (``"native"``). If it does not, declare the schemas of the two
operators that torchvision registers fake kernels for, so that the import succeeds (``"shim"``). The
operators still have no kernel: calling ``torchvision.ops.nms`` raises torchvision's own "Couldn't load
custom C++ ops" error. A U-Net uses none of torchvision's C++ operators.

Call :func:`ensure_torchvision_importable` before importing ``segmentation_models_pytorch``;
:mod:`crack_utils.model` does.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_state: dict[str, object] = {"status": None, "library": None}


def _extension_path() -> str | None:
    """Path of torchvision's ``_C`` extension without importing torchvision, or None."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = os.path.join(folder, "_C" + suffix)
            if os.path.exists(candidate):
                return candidate
    return None


def _load_extension(path: str) -> bool:
    import torch

    try:
        torch.ops.load_library(path)
        return True
    except (OSError, ImportError, RuntimeError):
        return False


def _operator_defined(name: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def ensure_torchvision_importable(load_extension=_load_extension) -> str:
    """Prepare torch so that ``import torchvision`` succeeds; returns what was done.

    ``"native"``: the real extension loads (or was loaded), nothing was changed.
    ``"shim"``: the extension does not load; the ``nms``/``qnms`` schemas were declared.
    ``"absent"``: torchvision is not installed. ``"already-imported"``: torchvision was imported before.
    Idempotent; ``load_extension`` is injectable for tests.
    """
    if _state["status"] is not None:
        return _state["status"]  # type: ignore[return-value]
    if "torchvision" in sys.modules:
        status = "already-imported"
    else:
        path = _extension_path()
        if importlib.util.find_spec("torchvision") is None:
            status = "absent"
        elif path is not None and load_extension(path):
            status = "native"
        else:
            status = _declare_missing_schemas()
    _state["status"] = status
    return status


def _declare_missing_schemas() -> str:
    import torch

    missing = [name for name in _SCHEMAS if not _operator_defined(name)]
    if not missing:
        return "native"
    library = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        library.define(_SCHEMAS[name])
    _state["library"] = library  # keep the registration alive for the life of the process
    return "shim"
