"""Migrations of committed studies, run by hand, nothing retrained or re-scored:
``python -m crack_utils.tools.migrate --add-protocol results/<study> ...`` gives a study published before
protocol lines existed its protocol line; ``--comparisons results/<study> ...`` rewrites its comparison tables
from its committed per-image CSVs with the current inference (trainings as the unit of evidence).
"""
from __future__ import annotations

from pathlib import Path

from crack_utils import paper
from crack_utils.report import ablation_table, paired_comparisons, protocol_text
from crack_utils.study.layout import REPORT_PAGE, read_study_config, report_dir, train_dir
from crack_utils.training_records import TrainingSummary


def protocol_from_config(config: dict) -> str:
    """The protocol sentence from a study config alone, for studies whose training metadata is not kept."""
    t, m = config["training"], config["model"]
    per_epoch = "all training" if t["samples_per_epoch"] is None else f"{int(t['samples_per_epoch']):,}"
    return (f"Protocol (from the study config; training metadata not kept): U-Net ({m['encoder']}), "
            f"{config['image_size']} px; {t['epochs']} epochs × {per_epoch} images (the paper: {paper.EPOCHS} epochs); "
            f"batch {t['batch_size']}, Adam lr {t['lr']:g}; seed(s) {', '.join(str(s) for s in config['seeds'])}.")


def add_protocol(results) -> str:
    """Give a study published before protocol lines existed its protocol, from its own trainings' metadata
    (``study_config.json``, ``03_train/*/run_metadata.json``, ``training_summary.json``): writes
    ``protocol.md`` (and its ``05_report/`` copy), prepends it to ``table1.md`` (both copies) and to the
    body of ``report.html``. Idempotent; returns the protocol sentence. Nothing is retrained or re-scored."""
    from html import escape

    results = Path(results)
    config = read_study_config(results)
    if all(TrainingSummary.exists(train_dir(results, loss, s))
           for loss in config["losses"] for s in config["seeds"]):
        protocol = protocol_text(results, config["losses"], config["seeds"], int(config["image_size"]))
    else:  # the trainings' metadata was not committed (leave-one-dataset-out studies): the config's protocol
        protocol = protocol_from_config(config)
    for folder in (results, report_dir(results)):
        if not folder.is_dir():
            continue
        (folder / "protocol.md").write_text(protocol + "\n")
        table = folder / "table1.md"
        if table.is_file() and not table.read_text().startswith("Protocol"):
            table.write_text(f"{protocol}\n\n{table.read_text()}")
    page = results / REPORT_PAGE
    if page.is_file() and "<p><b>Protocol" not in page.read_text():
        text = page.read_text()
        head, sep, rest = text.partition("</h1>")
        if sep:
            page.write_text(f"{head}</h1><p><b>{escape(protocol)}</b></p>{rest}")
    return protocol


def regenerate_comparisons(results) -> list[Path]:
    """Rewrite a committed study's comparison tables from its committed per-image CSVs, with the current
    inference (:func:`paired_comparisons`, :func:`ablation_table`): ``paired_comparisons.csv`` and, when the
    study has variants, ``ablation.csv`` — in the study folder and in ``05_report/`` where that exists.
    Nothing is retrained or re-scored, and no notebook runs: for studies whose report notebook cannot rerun
    from committed files (no predictions committed). Returns the files written."""
    from crack_utils.study.config import variant_seeds
    from crack_utils.pipeline import run_specs

    results = Path(results)
    config = read_study_config(results)
    losses, seeds = list(config["losses"]), list(config["seeds"])
    tables = {"paired_comparisons.csv": paired_comparisons(results, losses, seeds, reference="distance")}
    variants = list(config.get("variants") or {})
    if variants and (results / "ablation.csv").is_file():
        tables["ablation.csv"] = ablation_table(results, run_specs(config), [*losses, *variants], variant_seeds(config))
    written = []
    for folder in (results, report_dir(results)):
        if folder.is_dir():
            for name, table in tables.items():
                if folder == results or (folder / name).is_file():
                    table.to_csv(folder / name, index=False)
                    written.append(folder / name)
    return written


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m crack_utils.tools.migrate",
                                     description="Update committed studies without rerunning them.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--add-protocol", nargs="+", metavar="RESULTS_DIR",
                      help="add the protocol line to studies published before it existed, e.g. results/lodo_cfd")
    what.add_argument("--comparisons", nargs="+", metavar="RESULTS_DIR",
                      help="rewrite paired_comparisons.csv and ablation.csv from the committed per-image CSVs "
                           "(trainings as the unit of evidence)")
    args = parser.parse_args(argv)
    for folder in args.add_protocol or []:
        print(f"{folder}: {add_protocol(folder)}")
    for folder in args.comparisons or []:
        written = regenerate_comparisons(folder)
        print(f"{folder}: wrote {', '.join(str(p.relative_to(folder)) for p in written)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
