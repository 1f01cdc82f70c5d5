"""Fitting a study into a wall-time budget (the lent GPU's one call: ``scripts/gpu_paper.sh`` with ``DEADLINE``).

``plan``: from the measured aggregate training images/s of K trainings at once on the device
(:mod:`crack_utils.tools.concurrency`), the most seeds of the config's Table 1 (whole seeds: every loss) whose
trainings, run in waves of whole seeds, fit the budget with a safety factor, and the wave size that finishes
them soonest. If not even one seed fits at the config's epochs, the longest of :data:`FALLBACK_EPOCHS` that
does (the plan and the written config's description say so: such a result is not the config's protocol). Writes the config with those seeds (and epochs) under the
same study name, so the runs are the study's own, and the plan as shell variables.

``completed``: the seeds whose every Table 1 loss has a finished evaluation — what a report can be made of
when a deadline stopped the study part way (trainings are submitted seed by seed, see
:func:`crack_utils.study.config.trainings`).
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from crack_utils import paper
from crack_utils.study import layout
from crack_utils.study.freshness import METADATA

#: Shorter trainings tried, longest first, when one seed at the config's epochs does not fit.
FALLBACK_EPOCHS = (paper.EPOCHS, 30, 20, 10, 5, 2, 1)


@dataclass
class Plan:
    seeds: list[int]
    epochs: int
    workers: int
    predicted_s: float
    fits: bool

    def sentence(self, losses: int) -> str:
        return (f"plan: seeds {self.seeds} x {losses} losses at {self.epochs} epochs, {self.workers} trainings at "
                f"once, predicted {self.predicted_s:.0f} s" + ("" if self.fits else " (does NOT fit the budget)"))


def throughput_at(k: int, measured: dict[int, float]) -> float:
    """Aggregate images/s of ``k`` trainings at once: measured; between two measured K linearly
    interpolated (below the smallest, from 0 at K = 0); above the largest, 5 % less than the largest (more
    processes than measured are assumed no faster)."""
    if not measured:
        raise ValueError("no throughput measurements")
    if any(not (v > 0 and math.isfinite(v)) for v in measured.values()):
        raise ValueError(f"measured throughputs must be positive: {measured}")
    if k in measured:
        return measured[k]
    points = [(0, 0.0), *sorted(measured.items())]
    if k > points[-1][0]:
        return 0.95 * points[-1][1]
    for (k0, v0), (k1, v1) in zip(points, points[1:]):
        if k0 < k < k1:
            return v0 + (v1 - v0) * (k - k0) / (k1 - k0)
    raise ValueError(f"cannot place {k} trainings at once among {sorted(measured)}")


def predicted_seconds(trainings: int, k: int, images_per_training: float, measured: dict[int, float],
                      per_wave_s: float, tail_s: float, safety: float) -> float:
    """Wall seconds for ``trainings`` trainings run ``k`` at a time: ``ceil(trainings / k)`` waves of ``k``
    trainings at the aggregate rate of ``k`` (the last, smaller wave counted as a full one), times ``safety``,
    plus ``per_wave_s`` per wave (kernel start, data upload, validation, checkpoints) and ``tail_s``
    (evaluations and report)."""
    waves = math.ceil(trainings / k)
    train = waves * k * images_per_training / throughput_at(k, measured)
    return safety * train + per_wave_s * waves + tail_s


def plan(measured: dict[int, float], seeds: list[int], losses: int, epochs: int, images_per_epoch: int,
         budget_s: float, per_wave_s: float = 30.0, tail_s: float = 90.0, safety: float = 1.25) -> Plan:
    """The most leading ``seeds`` (whole seeds of ``losses`` trainings of ``epochs`` x ``images_per_epoch``
    images) that fit ``budget_s`` by :func:`predicted_seconds`, run in waves of whole seeds (K a multiple of
    ``losses``: if the study is stopped, the seeds of finished waves are complete), with the K that predicts
    the least time; at one seed, the longest epochs of :data:`FALLBACK_EPOCHS` (at most ``epochs``) that
    fit; if nothing fits, one seed at the shortest, marked ``fits=False``."""
    if losses < 1 or not seeds:
        raise ValueError("a plan needs at least one loss and one seed")

    def best(n: int, e: int) -> tuple[float, int]:
        return min((predicted_seconds(n * losses, k, e * images_per_epoch, measured, per_wave_s, tail_s, safety), k)
                   for k in range(losses, n * losses + 1, losses))

    for n in range(len(seeds), 0, -1):
        seconds, k = best(n, epochs)
        if seconds <= budget_s:
            return Plan(list(seeds[:n]), epochs, k, seconds, True)
    shorter = [e for e in FALLBACK_EPOCHS if e < epochs] or [epochs]
    for e in shorter:
        seconds, k = best(1, e)
        if seconds <= budget_s:
            return Plan(list(seeds[:1]), e, k, seconds, True)
    seconds, k = best(1, shorter[-1])
    return Plan(list(seeds[:1]), shorter[-1], k, seconds, False)


def training_images(data_dir: Path) -> int:
    """Images in the training split of a study's data stage (``manifest.csv``: split ``train``, prepared)."""
    from crack_utils.study.committed import read_table

    manifest = read_table(Path(data_dir) / "manifest.csv")
    used = manifest[(manifest["split"] == "train") & manifest["prepared"].astype(bool)]
    if used.empty:
        raise ValueError(f"no prepared training images in {Path(data_dir) / 'manifest.csv'}")
    return len(used)


def completed_seeds(config: dict, results: Path) -> list[int]:
    """Seeds of ``config`` whose every Table 1 loss has a finished evaluation folder under ``results``."""
    study = layout.study_dir(config["name"], root=results)
    return [seed for seed in config["seeds"]
            if all((layout.evaluation_dir(study, loss, seed) / METADATA).is_file() for loss in config["losses"])]


def derived_config(path: Path, seeds: list[int], epochs: int | None = None) -> dict:
    """The raw YAML of ``path`` with ``seeds`` (and ``training.epochs``) replaced; the name stays (written
    out: by default a config's name is its file's stem)."""
    from crack_utils.study.config import load_config

    raw = yaml.safe_load(Path(path).read_text()) or {}
    config = load_config(path)
    raw["name"] = config["name"]
    raw["seeds"] = list(seeds)
    if epochs is not None and epochs != config["training"]["epochs"]:
        raw.setdefault("training", {})["epochs"] = int(epochs)
        raw["training"]["snapshot_epochs"] = [k for k in raw["training"].get("snapshot_epochs") or [] if k < epochs]
        raw["description"] = (f"NOT the config's protocol: {epochs} instead of {config['training']['epochs']} epochs, "
                              f"planned to fit a deadline. {config.get('description') or ''}").strip()
    return raw


def main(argv=None) -> int:
    from crack_utils.study.config import load_config

    parser = argparse.ArgumentParser(prog="python -m crack_utils.tools.budget", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="seeds, epochs and trainings at once that fit a budget")
    p.add_argument("--config", required=True)
    p.add_argument("--throughput", required=True, help="JSON of python -m crack_utils.tools.concurrency --json")
    p.add_argument("--budget-s", type=float, required=True)
    p.add_argument("--write", required=True, help="the config to run")
    p.add_argument("--env", required=True, help="shell variables of the plan (SEEDS, EPOCHS, WORKERS, ...)")
    c = sub.add_parser("completed", help="the config of the seeds whose every loss is evaluated")
    c.add_argument("--config", required=True)
    c.add_argument("--results", default=layout.RESULTS)
    c.add_argument("--write", required=True)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.command == "plan":
        if config["variants"]:
            raise SystemExit(f"{args.config}: plan fits whole seeds of the Table 1 losses; a config with variants "
                             "is not supported")
        measured = {int(k): float(v) for k, v in json.loads(Path(args.throughput).read_text())["img_per_s"].items()}
        train = config["training"]
        per_epoch = train["samples_per_epoch"] or training_images(layout.data_dir(layout.study_dir(config["name"])))
        chosen = plan(measured, list(config["seeds"]), len(config["losses"]), int(train["epochs"]), per_epoch,
                      args.budget_s)
        Path(args.write).write_text(yaml.safe_dump(derived_config(Path(args.config), chosen.seeds, chosen.epochs),
                                                   sort_keys=False))
        Path(args.env).write_text(f"SEEDS='{' '.join(map(str, chosen.seeds))}'\nEPOCHS={chosen.epochs}\n"
                                  f"WORKERS={chosen.workers}\nPREDICTED_S={chosen.predicted_s:.0f}\n"
                                  f"FITS={int(chosen.fits)}\n")
        print(chosen.sentence(len(config["losses"])) + f" (budget {args.budget_s:.0f} s, {per_epoch} images per "
              f"epoch, measured {', '.join(f'K={k}: {v:.0f} img/s' for k, v in sorted(measured.items()))})")
        return 0
    seeds = completed_seeds(config, Path(args.results))
    if not seeds:
        print(f"no seed of study '{config['name']}' has every loss evaluated")
        return 1
    Path(args.write).write_text(yaml.safe_dump(derived_config(Path(args.config), seeds), sort_keys=False))
    print(f"seeds with every loss evaluated: {seeds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
