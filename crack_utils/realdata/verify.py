"""Check a copy of the real data against the committed checksum list:
``python -m crack_utils.realdata.verify <data root>`` (``make verify-data DATA=<root>``).

Prints one line per dataset (matches, or how many files are missing, extra or changed), then every
differing file by name, then which study configs a matching copy reproduces; exits 1 on any difference.
``--write-list`` makes the list from a copy instead (how ``data/real_data_sha256.csv.gz`` was made, from
``../shared/data``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crack_utils.realdata import checksums
from crack_utils.realdata.origins import DATASETS


def verify(root: str | Path, listing: str | Path | None = None, out=print, datasets=None) -> bool:
    """Compare ``root`` with the checksum list (only the listed files of ``datasets`` when given) and report
    (see the module docstring); True when it matches."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist")
    expected = checksums.read_list(listing)
    if datasets is not None:
        expected = expected[expected["path"].map(checksums.dataset_of).isin(list(datasets))]
    datasets = sorted({checksums.dataset_of(p) for p in expected["path"]}, key=list(DATASETS).index)
    actual = checksums.file_table(root, datasets)
    differences = checksums.compare(expected, actual, root)
    verdicts = checksums.dataset_verdicts(expected, differences, root)
    out(f"Checking {root} against {checksums.CHECKSUM_LIST} ({len(expected)} files of {len(datasets)} datasets)")
    for v in verdicts.itertuples(index=False):
        if v.matches:
            state = "matches"
        elif not v.present:
            state = f"MISSING: no folder {v.dataset}/ ({v.files} files expected)"
        else:
            state = f"DIFFERS: {v.missing} missing, {v.extra} extra, {v.changed} changed"
        out(f"  {v.dataset:<20} {v.files:>5} files  {state}")
    present = set(verdicts.loc[verdicts["present"], "dataset"])
    for d in checksums.differences(differences[differences["dataset"].isin(present)]).itertuples(index=False):
        out(f"  {d.status:<8} {d.path}: {d.detail}")
    same = int((differences["status"] == "same pixels").sum())
    if same:
        out(f"  ({same} mask(s) have other PNG bytes but the listed pixels: written by another PNG encoder; "
            "they count as matching)")
    matching = set(verdicts.loc[verdicts["matches"], "dataset"])
    studies = checksums.studies_of_data(matching)
    if studies["reproduces"]:
        out("A copy like this one reproduces the data of the studies " + ", ".join(studies["reproduces"])
            + " (point their data.root at it).")
    if studies["not"]:
        out("Not the data of: " + ", ".join(studies["not"]) + " (they read a dataset that does not match).")
    ok = bool(len(verdicts)) and bool(verdicts["matches"].all())
    out("OK: the copy is the one the study used." if ok else "The copy differs from the one the study used.")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crack_utils.realdata.verify", description=__doc__.split("\n")[0])
    parser.add_argument("root", help="the data root: the folder that holds cfd/, deepcrack_lmm/, ...")
    parser.add_argument("--list", help=f"checksum list (default: {checksums.CHECKSUM_LIST})")
    parser.add_argument("--write-list", action="store_true", help="write the checksum list from this copy instead")
    args = parser.parse_args(argv)
    if args.write_list:
        table = checksums.file_table(args.root, pixels=True)
        path = checksums.write_list(table, args.list)
        print(f"wrote {path} ({len(table)} files)")
        return 0
    try:
        return 0 if verify(args.root, args.list) else 1
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
