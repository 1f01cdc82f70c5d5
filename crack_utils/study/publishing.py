"""Publishing a study: the headline files copied to ``results/<name>/`` and ``report.html``, the index page
that links every executed notebook (their HTML renderings are written by the pipeline and not committed:
``make report`` or a rerun regenerates them).

The page also states the provenance of the study's runs: the commits its trainings and evaluations were
made at. When they differ (a study extended or partly rerun after a code change) the page says so, so a
reader knows which numbers come from which code.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from crack_utils.study.freshness import METADATA
from crack_utils.study.layout import PUBLISHED, REPORT_PAGE, TRAIN


def _group_by_segments(results: Path, runs, field: str, key) -> dict:
    """``{key(record): [run names]}`` over the ``field`` records (``"git"``, ``"device"``) of each run's
    ``run_metadata.json``: for a training, those of the segments that trained its weights
    (``weights_trained_by``), not of a rerun that only re-entered it. ``runs``: pipeline runs or run names
    relative to ``results`` (``03_train/dice-seed0``); runs without metadata are left out."""
    groups: dict = {}
    for run in runs:
        name = getattr(run, "name", run)
        path = Path(results) / name / METADATA
        if not path.is_file():
            continue
        meta = json.loads(path.read_text())
        records = [seg.get(field) or {} for seg in meta.get("weights_trained_by") or []] or [meta.get(field) or {}]
        for record in records:
            names = groups.setdefault(key(record), [])
            if name not in names:
                names.append(name)
    return groups


def run_commits(results: Path, runs) -> dict:
    """``{commit (short, "+dirty" when the tree had changes): [run names]}`` of ``runs``
    (:func:`_group_by_segments`: a training's commits are those that trained its weights)."""
    return _group_by_segments(results, runs, "git", lambda git: (git.get("commit") or "unknown")[:10]
                              + ("+dirty" if git.get("dirty") else ""))


def machine_name(device: dict) -> str:
    """The machine a ``device`` record of ``run_metadata.json`` names: the GPU, else the CPU model with the
    instruction set torch used (``AMD EPYC (AVX2)``); ``unknown`` without a record."""
    if device.get("gpu"):
        return device["gpu"]
    model = device.get("cpu_model") or "unknown"
    return f"{model} ({device['cpu_isa']})" if device.get("cpu_isa") else model


def training_machines(results: Path, runs) -> dict:
    """``{machine (:func:`machine_name`): [run names]}`` of the trainings among ``runs`` (those under
    ``03_train/``; :func:`_group_by_segments`: the machines of the segments that trained their weights)."""
    trainings = [run for run in runs if Path(getattr(run, "name", run)).parts[0] == TRAIN]
    return _group_by_segments(results, trainings, "device", machine_name)


def machines_html(machines: dict) -> str:
    """A paragraph naming the machines the trainings ran on; a warning when there are several, since a
    comparison paired by seed then mixes machines wherever a seed's losses trained on different ones (the
    same training moves by about the seed spread from one CPU to another: results/README.md, xcheck)."""
    if not machines:
        return ""
    if len(machines) == 1:
        return f"<p>All trainings ran on {next(iter(machines))}.</p>"
    detail = "".join(f"<li>{m}: {', '.join(names)}</li>" for m, names in machines.items())
    return (f"<p><b>Note: the trainings of this study ran on {len(machines)} kinds of machine</b>; where a "
            f"seed's losses trained on different machines, their comparison mixes the machine with the loss."
            f"</p><ul>{detail}</ul>")


def provenance_html(commits: dict) -> str:
    """A paragraph naming the commits; a warning when the runs come from more than one."""
    if not commits:
        return ""
    parts = ", ".join(f"<code>{c}</code> ({len(names)} runs)" for c, names in commits.items())
    if len(commits) == 1:
        return f"<p>All runs were made at commit {parts}.</p>"
    detail = "".join(f"<li><code>{c}</code>: {', '.join(names)}</li>" for c, names in commits.items())
    return (f"<p><b>Note: the runs of this study were made at {len(commits)} different commits</b> ({parts}); "
            f"results of different code may not be comparable. Rerun with <code>--force</code> to remake them "
            f"at one commit.</p><ul>{detail}</ul>")


def _markdown_table_html(markdown: str) -> str:
    """The pipe table and notes of ``table1.md`` as simple HTML."""
    import html

    rows, notes = [], []
    for line in markdown.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([html.escape(c.strip()) for c in line.strip("|").split("|")])
        elif line.strip() and not line.startswith(("|", "Protocol")):  # the protocol heads the page
            notes.append(html.escape(line))
    if not rows:
        return ""
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows[1:])
    return (f"<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"
            + "".join(f"<p>{n}</p>" for n in notes))


def copy_published(source: Path, results: Path, names) -> None:
    """Copy the files ``names`` that exist in ``source`` to ``results``, each replaced atomically."""
    for name in names:
        src = Path(source) / name
        if src.exists():
            tmp = results / f".tmp-{name}"
            shutil.copyfile(src, tmp)
            os.replace(tmp, results / name)


def publish(report_dir: Path, results: Path, runs: list[Run], wall_seconds: float, stages: list[str] | None = None) -> None:
    """Copy the headline files to ``results/<name>/`` and write an index page linking every report."""
    from html import escape as html_escape

    copy_published(report_dir, results, PUBLISHED)
    provenance = (provenance_html(run_commits(results, [r for r in runs if r.stage in ("train", "evaluate")]))
                  + machines_html(training_machines(results, [r for r in runs if r.stage == "train"])))
    links = []
    for run in runs:
        executed = Path(run.name) / Path(run.notebook).name
        html = executed.with_suffix(".html")
        rendered = f' (<a href="{html.as_posix()}">HTML</a>)' if (results / html).is_file() else ""
        links.append(f'<li><a href="{executed.as_posix()}">{run.name}</a>{rendered} — {run.notebook}</li>')
    table = _markdown_table_html((results / "table1.md").read_text()) if (results / "table1.md").exists() else ""
    protocol = (results / "protocol.md").read_text().strip() if (results / "protocol.md").exists() else ""
    beyond = "".join(f"<h3>{title}</h3><img src='{name}' style='max-width:100%'>"
                     for name, title in [("claims.png", "The paper's claims, per loss"),
                                         ("fp_distances.png", "Where the false positives are"),
                                         ("alpha_curve.png", "The α curve"),
                                         ("training_length.png", "Training length")] if (results / name).exists())
    if (results / "ablation.csv").exists():
        import pandas as pd

        ablation = pd.read_csv(results / "ablation.csv")
        columns = ["run", "setting", "precision", "recall", "dice", "fp_far_20px_share", "cldice_mean", "diff_vs_dice"]
        beyond += "<h3>Ablations and peer losses</h3>" + ablation[columns].round(4).to_html(index=False, na_rep="")
    page = ("<!doctype html><meta charset='utf-8'><title>Crack-loss study: {name}</title>"
            "<h1>Crack-loss study: {name}</h1><p><b>{protocol}</b></p><p>Wall time of the last pipeline run ({stages}): {wall:.0f} s; "
            "each notebook's own time is in its run_metadata.json.</p>{provenance}"
            "<h2>Table 1</h2>{table}<h2>Figure 2</h2><img src='figure2.png' style='max-width:100%'>"
            "{beyond_heading}{beyond}<h2>Executed notebooks</h2><p>Each run's executed notebook (code hosts render "
            "them); the HTML renderings are written by the pipeline and rebuilt by <code>make report</code>.</p>"
            "<ul>{links}</ul>").format(
        name=results.name, protocol=html_escape(protocol), wall=wall_seconds, stages="stages " + ", ".join(stages) if stages else "all stages", table=table,
        links="".join(links), beyond=beyond, provenance=provenance, beyond_heading="<h2>Beyond the paper</h2>" if beyond else "")
    (results / REPORT_PAGE).write_text(page, encoding="utf-8")


def render_study(results: str | Path) -> list[Path]:
    """Write the HTML rendering next to every executed notebook under ``results`` (a study folder) that has
    none or an older one; returns the pages written. What ``make report`` runs."""
    from crack_utils.study.notebook_run import render_html

    written = []
    for notebook in sorted(Path(results).rglob("*.ipynb")):
        if any(part.startswith(".tmp-") or part.endswith(".failed") for part in notebook.parts):
            continue
        html = notebook.with_suffix(".html")
        if not html.is_file() or html.stat().st_mtime < notebook.stat().st_mtime:
            render_html(notebook, html)
            written.append(html)
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m crack_utils.study.publishing",
                                     description="Render the HTML pages of the executed notebooks of studies.")
    parser.add_argument("studies", nargs="+", help="study folders, e.g. results/compilation")
    args = parser.parse_args(argv)
    for study in args.studies:
        if not Path(study).is_dir():
            print(f"no study folder {study}", file=sys.stderr)
            return 1
        pages = render_study(study)
        print(f"{study}: {len(pages)} HTML page(s) written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
