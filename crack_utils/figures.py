"""Figures: Figure 2 (predictions side by side), training curves, example grids, distance maps."""
from __future__ import annotations

import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# seaborn (~1.2 s to import, with scipy.stats) is imported by the plots that use it, so notebooks that only
# draw image grids (02, 04) do not pay for it.

from crack_utils.claims import FAR_DISTANCES_PX
from crack_utils.tables import LOSS_LABELS

def choose_examples(manifest_rows: pd.DataFrame, n: int = 4, prefer_distractors: bool = True) -> list[str]:
    """Deterministic Figure 2 choice of ``n`` keys among pairs with cracks.

    Datasets are visited in name order, round-robin; within a dataset the first pick is the pair at the
    median crack fraction, later picks the next quantiles (ties broken by key). With one dataset this
    spreads the picks over the crack-fraction range. With ``prefer_distractors`` and a ``distractors``
    column (the synthetic data records its stains, joints and shadows), pairs with a crack-like distractor
    (a joint or a stain) are chosen when there are at least ``n``, so the figure shows where each loss
    puts false positives.
    """
    rows = manifest_rows[manifest_rows["crack_fraction"] > 0]
    if prefer_distractors and "distractors" in rows:
        with_distractor = rows[rows["distractors"].fillna("").astype(str).str.contains("joint|stain")]
        if len(with_distractor) >= n:
            rows = with_distractor
    if rows.empty:
        rows = manifest_rows
    groups = {name: g.sort_values(["crack_fraction", "key"])["key"].tolist()
              for name, g in rows.groupby("dataset", sort=True)}
    per_group = {name: _spread(keys, n) for name, keys in groups.items()}
    picks: list[str] = []
    for round_ in range(n):
        for name in groups:
            if round_ < len(per_group[name]) and len(picks) < n:
                picks.append(per_group[name][round_])
    return picks


def _spread(keys: list[str], n: int) -> list[str]:
    """Up to ``n`` keys from a sorted list: the median first, then quantiles spreading outwards."""
    if len(keys) <= 1:
        return keys
    positions = np.linspace(0, len(keys) - 1, min(n, len(keys)) + 2)[1:-1].round().astype(int)
    middle = len(keys) // 2
    order = sorted(dict.fromkeys(positions.tolist()), key=lambda p: (abs(p - middle), p))
    # few keys: rounding can pick one position twice; fill up with the keys nearest the median
    rest = sorted(set(range(len(keys))) - set(order), key=lambda p: (abs(p - middle), p))
    return [keys[p] for p in (order + rest)[:n]]


def figure2(images: np.ndarray, masks: np.ndarray, predictions: dict[str, np.ndarray], keys=None,
            overlay: bool = False):
    """Original, ground truth and one column per loss (the paper's Figure 2 shape).

    ``images`` uint8 (n, S, S, 3), ``masks`` (n, S, S), ``predictions`` loss -> binary (n, S, S). With
    ``overlay`` the prediction columns colour TP white, FP red and FN blue.
    """
    columns = ["Original Image", "Ground Truth"] + [LOSS_LABELS.get(k, k) for k in predictions]
    n = len(images)
    fig, axes = plt.subplots(n, len(columns), figsize=(2.2 * len(columns), 2.2 * n), squeeze=False)
    for r in range(n):
        panels = [images[r], masks[r]] + [p[r] for p in predictions.values()]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            if c >= 2 and overlay:
                ax.imshow(error_overlay(panel, masks[r]))
            else:
                ax.imshow(panel, cmap=None if panel.ndim == 3 else "gray", vmin=0, vmax=1 if panel.ndim == 2 else None)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0 and keys is not None:
                ax.set_ylabel(str(keys[r]).replace("/", "\n", 1), fontsize=7)
    fig.tight_layout()
    return fig

def error_overlay(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """RGB float (S, S, 3): true positives white, false positives red, false negatives blue."""
    pred, target = pred.astype(bool), target.astype(bool)
    rgb = np.zeros(pred.shape + (3,), np.float32)
    rgb[pred & target] = (1, 1, 1)
    rgb[pred & ~target] = (1, 0.15, 0.15)
    rgb[~pred & target] = (0.2, 0.4, 1)
    return rgb

def training_curves(histories: dict[str, pd.DataFrame]):
    """Training and validation loss, and validation Dice, per epoch for each run (label -> history)."""
    import seaborn as sns

    long = pd.concat([h.assign(run=label) for label, h in histories.items()], ignore_index=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    loss = long.melt(id_vars=["run", "epoch"], value_vars=["train_loss", "val_loss"], var_name="split", value_name="loss")
    sns.lineplot(data=loss, x="epoch", y="loss", hue="run", style="split", marker="o", ax=axes[0])
    sns.lineplot(data=long, x="epoch", y="val_dice", hue="run", marker="o", ax=axes[1])
    axes[0].set_title("loss per epoch (each loss on its own scale)")
    axes[1].set_title("validation Dice (pooled, threshold 0.5)")
    fig.tight_layout()
    return fig

def pair_grid(images: np.ndarray, masks: np.ndarray, titles=None, columns: int = 6):
    """Image with the mask outlined in red, for example and flagged-label grids."""
    n = len(images)
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.1 * rows), squeeze=False, dpi=72)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(images[i])
        if masks[i].any():
            ax.contour(masks[i].astype(float), levels=[0.5], colors="red", linewidths=0.6)
        if titles is not None:
            ax.set_title(str(titles[i])[:40], fontsize=6)
    fig.tight_layout()
    return fig

def distance_examples(images: np.ndarray, masks: np.ndarray, maps: np.ndarray, titles=None):
    """Rows of (image, mask, distance map) with a colour bar for the map."""
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.4 * n), squeeze=False, dpi=80)
    for r in range(n):
        axes[r, 0].imshow(images[r])
        axes[r, 1].imshow(masks[r], cmap="gray")
        im = axes[r, 2].imshow(maps[r], cmap="magma", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[r, 2], fraction=0.046)
        for c, title in enumerate(["image", "mask", "normalized distance"]):
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(title, fontsize=9)
        if titles is not None:
            axes[r, 0].set_ylabel(str(titles[r])[-24:], fontsize=7)
    fig.tight_layout()
    return fig


def claim_distributions(claim_rows: pd.DataFrame):
    """Per-image clDice, tolerance F1 and Betti-0 error by loss, and the pooled far-FP shares."""
    import seaborn as sns

    from crack_utils.report import summarize_claims

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, column, title in zip(axes[:3], ["cldice", "tol_f1", "betti0_error"],
                                 ["clDice per image", "tolerance F1 (2 px) per image", "Betti-0 error per image"]):
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated `vert`
            warnings.filterwarnings("ignore", category=matplotlib.MatplotlibDeprecationWarning)
            sns.boxplot(data=claim_rows, x="loss", y=column, ax=ax, showfliers=False)
        ax.set_title(title, fontsize=10)
    shares = summarize_claims(claim_rows).melt(id_vars="loss", value_vars=["fp_far_5px_share", "fp_far_20px_share"],
                                               var_name="threshold", value_name="share")
    shares["threshold"] = shares["threshold"].map({"fp_far_5px_share": "> 5 px", "fp_far_20px_share": "> 20 px"})
    sns.barplot(data=shares, x="loss", y="share", hue="threshold", ax=axes[3])
    axes[3].set_title("false-positive pixels far from any crack", fontsize=10)
    fig.tight_layout()
    return fig


def alpha_curve(curve: pd.DataFrame, reference: pd.Series | None = None):
    """α against pooled Dice, the share of false positives > 20 px from a crack, and mean clDice.

    ``curve``: rows of :func:`crack_utils.report.alpha_curve` (columns ``alpha``, ``dice``,
    ``fp_far_20px_share``, ``cldice_mean``). ``reference``: an ablation row (e.g. BCE) drawn as a dashed line.
    """
    panels = [("dice", "pooled Dice"), ("fp_far_20px_share", "share of FP pixels > 20 px from a crack"),
              ("cldice_mean", "mean clDice")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
    for ax, (column, title) in zip(axes, panels):
        ax.plot(curve["alpha"], curve[column], marker="o", color="C2", label="Distance-based (α = 1: Dice)")
        if reference is not None:
            ax.axhline(reference[column], color="grey", linestyle="--", label=str(reference["run"]))
        ax.set_xscale("log", base=2)
        ax.set_xticks(curve["alpha"].tolist(), [f"{a:g}" for a in curve["alpha"]])
        ax.set_xlabel("α")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def training_length(table: pd.DataFrame):
    """Pooled Dice, share of false positives > 20 px from a crack and mean Betti-0 error against passes
    over the training split, one line per loss (mean over seeds, points per seed).

    ``table``: rows of :func:`crack_utils.training_length.training_length_table`.
    """
    import seaborn as sns

    panels = [("dice", "pooled Dice"), ("fp_far_20px_share", "share of FP pixels > 20 px from a crack"),
              ("betti0_error_mean", "mean Betti-0 error (components)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.3))
    data = table.assign(loss=table["loss"].map(lambda n: LOSS_LABELS.get(n, n)))
    for ax, (column, title) in zip(axes, panels):
        sns.lineplot(data=data, x="passes", y=column, hue="loss", marker="o", errorbar=None, ax=ax,
                     legend=ax is axes[0])
        if data["seed"].nunique() > 1:
            sns.scatterplot(data=data, x="passes", y=column, hue="loss", ax=ax, legend=False, alpha=0.4, s=14)
        ax.set_xlabel("passes over the training split")
        ax.set_ylabel("")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def false_positive_distance_histogram(histogram: pd.DataFrame):
    """Where the false positives are: per loss, the share of its false-positive pixels at each distance from
    the nearest true crack pixel (left; the last bin holds far ones and those on crack-free images) and the
    cumulative share (right), with dotted lines at 5 and 20 px.

    ``histogram``: :func:`crack_utils.report.false_positive_distance_histogram`.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    last = histogram["from_px"].max()
    for i, (loss, h) in enumerate(histogram.groupby("loss", sort=False)):
        label = LOSS_LABELS.get(loss, loss)
        x = np.append(h["from_px"].to_numpy(), last + (last - h["from_px"].iloc[-2]))
        axes[0].stairs(h["share"].to_numpy(), x, label=label, color=f"C{i}", linewidth=1.5)
        axes[1].step(h["to_px"].replace(np.inf, x[-1]).to_numpy(), h["cumulative_share"].to_numpy(), where="post",
                     label=label, color=f"C{i}")
    axes[0].set_xlabel(f"distance of a false-positive pixel to the nearest crack (px; last bin ≥ {last:g} px or no crack)")
    axes[0].set_ylabel("share of the loss's FP pixels")
    axes[1].set_xlabel("distance (px)")
    axes[1].set_ylabel("cumulative share of FP pixels")
    axes[1].set_ylim(0, 1.02)
    for ax in axes:
        for x in FAR_DISTANCES_PX:
            ax.axvline(x, color="grey", linewidth=0.6, linestyle=":")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
