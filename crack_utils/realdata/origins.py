"""Where each of the six real datasets comes from (facts of ``../shared/data/SOURCES.md``; prose in
``data/README.md``). Every other module reads these constants; nothing else states a commit or a cap."""
from __future__ import annotations

from dataclasses import dataclass

#: The seed of the per-photo patch cap (``random.Random(SELECTION_SEED)``; see :mod:`.select`).
SELECTION_SEED = 20240601


@dataclass(frozen=True)
class Origin:
    """A public GitHub repository at a pinned commit."""
    repo: str
    commit: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}.git"

    @property
    def mirror_name(self) -> str:
        """``owner+name``: the folder name of a local copy (as the study's tool library stores them)."""
        return self.repo.replace("/", "+")


CFD = Origin("cuilimeng/CrackForest-dataset", "ed57c2d96754e6c7d105805cd29aeeb3a799f267")
LMM = Origin("Omaralmaqtari/Lightweight-Modular-Model", "298b60c588fcf8575469b76805c9df0f177e2846")
ALEXDONCHUK = Origin("alexdonchuk/cracks_segmentation_dataset", "3aca2fdb798a47c9394120e9c03c058563c7c450")
ORIGINS = (CFD, LMM, ALEXDONCHUK)


@dataclass(frozen=True)
class PatchSet:
    """A cropped set of the Lightweight-Modular-Model repository: ``Datasets/<folder>/{train,valid,test}``
    (photos) and ``..._lab`` (JPEG labels), patch ``<photo>-<index>.jpg``; index < ``grid``² is a cell of
    the ``grid`` x ``grid`` grid, higher indices are random crops. ``cap``: at most this many grid patches
    per photo (None: all)."""
    dataset: str
    folder: str
    grid: int
    cap: int | None


PATCH_SETS = (
    PatchSet("deepcrack_lmm", "DeepCrack", grid=5, cap=8),
    PatchSet("crack500_lmm", "Crack500", grid=12, cap=6),
    PatchSet("gaps384_lmm", "GAPs384", grid=3, cap=None),
    PatchSet("aiglern_trimm_lmm", "AigleRN-TRIMM", grid=3, cap=None),
)
ORIGIN_SPLITS = ("train", "valid", "test")

#: The six datasets, in the order of SOURCES.md, and the origin each is built from.
DATASETS = {"cfd": CFD, **{s.dataset: LMM for s in PATCH_SETS}, "alexdonchuk_coarse": ALEXDONCHUK}
