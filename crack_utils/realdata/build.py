"""Rebuild the six real datasets from their public origins, then verify them against the checksum list:
``python -m crack_utils.realdata.build --out <folder>`` (``make real-data OUT=<folder>``).

Each origin repository (:mod:`.origins`) is read at its pinned commit with ``git archive``, from a clone
made here (``git clone`` over the network, a few hundred MB) or from local copies (``--origins DIR``: a
folder of ``<owner>+<name>/`` git repositories, bare or not). The conversions (:mod:`.convert`) and the
patch selection (:mod:`.select`) write ``<out>/<dataset>/images``, ``masks`` and ``meta.csv``; the
build ends with :func:`crack_utils.realdata.verify.verify` and exits 1 when the result differs.
"""
from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from crack_utils.progress import progress_bar
from crack_utils.realdata import convert, select
from crack_utils.realdata.origins import (ALEXDONCHUK, CFD, LMM, ORIGIN_SPLITS, ORIGINS, PATCH_SETS,
                                          SELECTION_SEED, Origin, PatchSet)


class BuildError(RuntimeError):
    """An origin that cannot be read (not found, not at the pinned commit); the message says which."""


class OriginFiles:
    """The files of one origin repository at its pinned commit, read with ``git archive`` into memory on
    demand: ``files(folder)`` lists paths, ``read(path)`` returns bytes."""

    def __init__(self, origin: Origin, git_dir: Path):
        self.origin, self.git_dir = origin, Path(git_dir)
        try:
            names = self._git("ls-tree", "-r", "--name-only", origin.commit).decode().splitlines()
        except subprocess.CalledProcessError as err:
            raise BuildError(f"{git_dir} does not hold commit {origin.commit} of {origin.repo}: "
                             f"{err.stderr.decode().strip()}") from err
        self.names = set(names)
        self._cache: dict[str, bytes] = {}

    def _git(self, *args) -> bytes:
        return subprocess.run(["git", "--git-dir", str(self.git_dir), *args], check=True, capture_output=True).stdout

    def files(self, folder: str) -> list[str]:
        prefix = folder.rstrip("/") + "/"
        return sorted(n for n in self.names if n.startswith(prefix))

    def load(self, folder: str) -> None:
        """Read every file under ``folder`` at once (one ``git archive``; much faster than one per file)."""
        data = self._git("archive", "--format=tar", self.origin.commit, folder)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    self._cache[member.name] = tar.extractfile(member).read()

    def read(self, path: str) -> bytes:
        if path not in self._cache:
            if path not in self.names:
                raise BuildError(f"{self.origin.repo}@{self.origin.commit[:7]} has no file {path}")
            try:
                self._cache[path] = self._git("cat-file", "blob", f"{self.origin.commit}:{path}")
            except subprocess.CalledProcessError as err:
                raise BuildError(f"cannot read {path} of {self.origin.repo}@{self.origin.commit[:7]} from "
                                 f"{self.git_dir}: {err.stderr.decode().strip()}") from err
        return self._cache[path]


def git_dir_of(folder: Path) -> Path:
    """The git directory of a repository folder: ``folder/.git``, ``folder/repo/.git``, ``folder/repo`` or
    ``folder`` itself (bare)."""
    for candidate in (folder / ".git", folder / "repo" / ".git", folder / "repo", folder):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    raise BuildError(f"{folder} is not a git repository (no .git, repo/ or bare repository in it)")


def obtain(origin: Origin, origins_dir: Path | None, work: Path) -> OriginFiles:
    """The origin's files: from ``origins_dir/<owner>+<name>`` when given, else cloned into ``work``."""
    if origins_dir is not None:
        folder = Path(origins_dir) / origin.mirror_name
        if not folder.exists():
            raise BuildError(f"no local copy of {origin.repo}: expected {folder}")
        return OriginFiles(origin, git_dir_of(folder))
    target = work / origin.mirror_name
    print(f"cloning {origin.url} (commit {origin.commit[:7]}) ...", flush=True)
    try:
        subprocess.run(["git", "clone", "--quiet", "--bare", "--filter=blob:none", origin.url, str(target)],
                       check=True, capture_output=True)
    except subprocess.CalledProcessError as err:
        raise BuildError(f"cannot clone {origin.url}: {err.stderr.decode().strip()} "
                         "(no network? clone it elsewhere and pass --origins)") from err
    return OriginFiles(origin, target)


def write_dataset(out: Path, dataset: str, pairs: list[tuple[dict, bytes, bytes]], columns: list[str]) -> int:
    """Write ``out/<dataset>/images``, ``masks`` and ``meta.csv`` (rows sorted by id); ``pairs``:
    ``(meta row, image bytes, mask PNG bytes)``. Returns the number of pairs."""
    folder = out / dataset
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    pairs = sorted(pairs, key=lambda p: p[0]["id"])
    for row, image, mask in pairs:
        (folder / row["image_file"]).write_bytes(image)
        (folder / row["mask_file"]).write_bytes(mask)
    with open(folder / "meta.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(columns)
        for row, _, _ in pairs:
            writer.writerow([convert.format_meta_value(row.get(c)) for c in columns])
    return len(pairs)


def build_cfd(repo: OriginFiles) -> list[tuple[dict, bytes, bytes]]:
    """Every CFD image with a ``groundTruth/<id>.mat`` (118): the image's bytes, the mask of label 2."""
    pairs = []
    for mat in progress_bar(repo.files("groundTruth"), desc="cfd"):
        pair_id = Path(mat).stem
        image = repo.read(f"image/{pair_id}.jpg")
        mask, extra, extra_pixels = convert.mask_from_cfd_segmentation(convert.read_cfd_mat(repo.read(mat)))
        row = convert.meta_row(pair_id, f"{pair_id}.jpg", image, mask, pair_id, "",
                               cfd_extra_labels=" ".join(map(str, extra)), cfd_extra_label_pixels=extra_pixels)
        pairs.append((row, image, convert.encode_mask_png(mask)))
    return pairs


def build_patch_set(repo: OriginFiles, spec: PatchSet) -> list[tuple[dict, bytes, bytes]]:
    """The kept grid patches of one cropped set (:mod:`.select`), masks from their JPEG labels."""
    root = f"Datasets/{spec.folder}"
    repo.load(root)
    patches = [p for split in ORIGIN_SPLITS for f in repo.files(f"{root}/{split}")
               if (p := select.parse_patch(split, Path(f).name)) is not None]
    kept = select.cap_per_photo(select.grid_patches(patches, spec.grid), spec.cap, SELECTION_SEED)
    ids = select.patch_ids(kept)
    pairs = []
    for p in progress_bar(kept, desc=spec.dataset):
        image = repo.read(f"{root}/{p.split}/{p.name}.jpg")
        mask = convert.mask_from_jpeg_label(convert.decode_grey(repo.read(f"{root}/{p.split}_lab/{p.name}.jpg")))
        row = convert.meta_row(ids[p], f"{ids[p]}.jpg", image, mask, p.photo, p.split,
                               grid_row=p.index // spec.grid, grid_col=p.index % spec.grid, grid_n=spec.grid)
        pairs.append((row, image, convert.encode_mask_png(mask)))
    return pairs


CFD_EXTRA_IDS = [f"{i:03d}" for i in (*range(201, 209), *range(301, 330))]


def alexdonchuk_id(stem: str) -> str:
    """Pair id of an image of the "All in one" set: ``cfdextra_<n>`` for the CFD images without official
    ground truth, ``chambon_<name>`` (``Im_GT_``/``Im_noGT_`` removed) for S. Chambon's database."""
    if stem in CFD_EXTRA_IDS:
        return f"cfdextra_{stem}"
    for prefix in ("Im_GT_", "Im_noGT_"):
        if stem.startswith(prefix):
            return "chambon_" + stem[len(prefix):]
    raise BuildError(f"unexpected image name {stem!r} in {ALEXDONCHUK.repo}")


def build_alexdonchuk(repo: OriginFiles, cfd: OriginFiles) -> list[tuple[dict, bytes, bytes]]:
    """The "All in one" set without its copies of CFD 001-118 (the CFD images with official labels, which
    are finer) and
    without byte-identical repeats (the first name in sorted order is kept); mask = class index > 0."""
    repo.load("ds/img")
    repo.load("ds/masks_machine")
    cfd_images = {cfd.read(f"image/{Path(mat).stem}.jpg") for mat in cfd.files("groundTruth")}
    seen: set[bytes] = set()
    pairs = []
    for path in progress_bar(repo.files("ds/img"), desc="alexdonchuk_coarse"):
        stem, suffix = Path(path).stem, Path(path).suffix
        image = repo.read(path)
        if image in cfd_images or image in seen:
            continue
        seen.add(image)
        pair_id = alexdonchuk_id(stem)
        with convert.Image.open(io.BytesIO(repo.read(f"ds/masks_machine/{stem}.png"))) as im:
            mask = convert.mask_from_class_map(convert.np.asarray(im))
        source = f"CFD image {stem} (no official CFD ground truth)" if pair_id.startswith("cfdextra_") else stem
        row = convert.meta_row(pair_id, f"{pair_id}{suffix}", image, mask, source, "")
        pairs.append((row, image, convert.encode_mask_png(mask)))
    return pairs


def build(out: str | Path, origins_dir: str | Path | None = None, datasets=None) -> dict[str, int]:
    """Build the datasets (all six, or ``datasets``) into ``out``; returns pairs per dataset."""
    out = Path(out)
    known = ["cfd", *(s.dataset for s in PATCH_SETS), "alexdonchuk_coarse"]
    unknown = sorted(set(datasets or []) - set(known))
    if unknown:
        raise BuildError(f"unknown dataset(s) {', '.join(unknown)}; the six are {', '.join(known)}")
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(datasets or known)
    counts = {}
    with tempfile.TemporaryDirectory(prefix="crack-origins-") as work:
        needed = ({CFD} if wanted & {"cfd", "alexdonchuk_coarse"} else set()) \
            | ({LMM} if wanted & {s.dataset for s in PATCH_SETS} else set()) \
            | ({ALEXDONCHUK} if "alexdonchuk_coarse" in wanted else set())
        repos = {o: obtain(o, Path(origins_dir) if origins_dir else None, Path(work)) for o in ORIGINS if o in needed}
        base, grid = convert.META_COLUMNS, convert.META_COLUMNS + convert.GRID_COLUMNS
        if "cfd" in wanted:
            counts["cfd"] = write_dataset(out, "cfd", build_cfd(repos[CFD]), base + convert.CFD_COLUMNS)
        for spec in PATCH_SETS:
            if spec.dataset in wanted:
                counts[spec.dataset] = write_dataset(out, spec.dataset, build_patch_set(repos[LMM], spec), grid)
        if "alexdonchuk_coarse" in wanted:
            counts["alexdonchuk_coarse"] = write_dataset(out, "alexdonchuk_coarse",
                                                         build_alexdonchuk(repos[ALEXDONCHUK], repos[CFD]), base)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crack_utils.realdata.build", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the datasets into (e.g. ../real-data)")
    parser.add_argument("--origins", help="folder of local copies <owner>+<name>/ of the origin repositories "
                                          "(default: clone them from GitHub)")
    parser.add_argument("--datasets", nargs="+", help="only these datasets (default: all six)")
    args = parser.parse_args(argv)
    try:
        counts = build(args.out, args.origins, args.datasets)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("built: " + ", ".join(f"{d} {n} pairs" for d, n in counts.items()), flush=True)
    from crack_utils.realdata.verify import verify

    return 0 if verify(args.out, datasets=list(counts)) else 1


if __name__ == "__main__":
    sys.exit(main())
