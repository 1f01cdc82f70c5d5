"""What a call to the lent GPU machine will carry, planned so that it fits by construction (issue 26).

Every device call carries the tracked working tree plus the git-ignored paths it names (``carry``), at
most 64 MiB together. This module keeps each call at :data:`CALL_LIMIT_BYTES` (60 MiB). The GPU run needs
the wheels (``.whl``, about 25 MiB) and the encoded data (``.gpu/data.npz.part-*``, about 31 MiB). When
they do not fit one call beside the tracked tree, the plan sends them in **back-to-back calls while the
machine stays warm**. Ignored files that travelled stay on the machine between calls while it stays warm,
as long as a later call neither names them in ``carry`` nor carries a path that blocks them. Each
copy-only call runs ``true``. The last call carries the rest and runs the study.

``python -m crack_utils.tools.device_call .gpu .whl`` prints the plan, the size of every call, and the
calls to make. It exits 1, with the sizes, when some piece alone does not fit beside the tracked tree.
:func:`plan_calls` is the pure part, and a CPU test checks it against the limit.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: What one call may carry, tracked tree included (the machine's limit is 64 MiB; 4 MiB kept in hand).
CALL_LIMIT_BYTES = 60 * 2**20
#: What the GPU run carries besides the tree, measured 2026-11-28 (scripts/gpu_pack.sh): the six datasets
#: encoded at 128 px (``.gpu/data.npz.part-*``) and the wheels of requirements/gpu-wheels.txt (``.whl``).
DATA_PARTS_BYTES = int(31.1 * 2**20)
WHEELS_BYTES = int(25.3 * 2**20)
#: Paths one call may name in ``carry``.
MAX_CARRY_PATHS = 8
MIB = 2**20


class PlanError(ValueError):
    """A piece that cannot travel in any call; the message gives the sizes."""


@dataclass
class Call:
    """One device call: the paths it names in ``carry`` (with their sizes) and whether it runs the study."""
    carry: list[str] = field(default_factory=list)
    carry_bytes: int = 0
    runs_study: bool = False

    def total(self, tracked: int) -> int:
        return tracked + self.carry_bytes


def path_bytes(path: str | Path) -> int:
    """Bytes of a file, or of every file under a folder (0 when absent)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def pieces(paths, root: str | Path = ".") -> list[tuple[str, int]]:
    """The carried paths as pieces that travel whole: a folder of ``*.part-*`` files (the encoded data)
    is split into its parts, so the parts can go in different calls; other paths stay whole."""
    out = []
    for name in paths:
        path = Path(root) / name
        parts = sorted(path.glob("*.part-*")) if path.is_dir() else []
        if parts:
            out += [(str(Path(name) / p.name), p.stat().st_size) for p in parts]
        elif path.exists():
            out.append((str(name), path_bytes(path)))
        else:
            raise PlanError(f"{name} does not exist: nothing to carry (run scripts/gpu_pack.sh first)")
    return out


def plan_calls(tracked: int, carried: list[tuple[str, int]], limit: int = CALL_LIMIT_BYTES,
               max_paths: int = MAX_CARRY_PATHS) -> list[Call]:
    """Calls that carry every piece of ``carried`` (``(path, bytes)``, in order), each at most ``limit``
    with the ``tracked`` tree. The pieces are packed first-fit in the order given, and the last call runs
    the study. Raises :class:`PlanError` naming a piece that does not fit beside the tracked tree even alone.
    """
    room = limit - tracked
    if room <= 0:
        raise PlanError(f"the tracked tree alone is {tracked / MIB:.1f} MiB, over the {limit / MIB:.0f} MiB a call "
                        "may carry: make slim (crack_utils.study.committed)")
    calls: list[Call] = []
    for name, size in carried:
        if size > room:
            raise PlanError(f"{name} is {size / MIB:.1f} MiB; beside the tracked tree ({tracked / MIB:.1f} MiB) one "
                            f"call holds {room / MIB:.1f} MiB (limit {limit / MIB:.0f} MiB): split it")
        call = next((c for c in calls if c.carry_bytes + size <= room and len(c.carry) < max_paths), None)
        if call is None:
            call = Call()
            calls.append(call)
        call.carry.append(name)
        call.carry_bytes += size
    if not calls:
        calls.append(Call())
    calls[-1].runs_study = True
    return calls


def describe(calls: list[Call], tracked: int, limit: int = CALL_LIMIT_BYTES) -> str:
    """The plan in words, one line per call."""
    lines = [f"working tree (tracked and untracked, not ignored) {tracked / MIB:.1f} MiB; each call carries at most {limit / MIB:.0f} MiB; "
             f"{len(calls)} call(s), back to back while the machine stays warm:"]
    for i, call in enumerate(calls, 1):
        what = "runs the study (scripts/gpu_paper.sh)" if call.runs_study else "copies only (command: true)"
        lines.append(f"  call {i}: carry [{', '.join(call.carry) or 'nothing'}] {call.carry_bytes / MIB:.1f} MiB "
                     f"+ tracked = {call.total(tracked) / MIB:.1f} MiB: {what}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from crack_utils.paths import repo_root
    from crack_utils.study.committed import tracked_sizes

    parser = argparse.ArgumentParser(prog="python -m crack_utils.tools.device_call", description=__doc__.split("\n")[0])
    parser.add_argument("carry", nargs="*", default=[".gpu", ".whl"], help="git-ignored paths the run needs")
    parser.add_argument("--limit-mib", type=float, default=CALL_LIMIT_BYTES / MIB)
    args = parser.parse_args(argv)
    root = repo_root()
    tracked = int(tracked_sizes(root, untracked=True)["bytes"].sum())
    limit = int(args.limit_mib * MIB)
    try:
        calls = plan_calls(tracked, pieces(args.carry, root), limit)
    except PlanError as err:
        print(f"refused: {err}", file=sys.stderr)
        return 1
    print(describe(calls, tracked, limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
