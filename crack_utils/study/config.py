"""Study configs: YAML files in ``configs/``, merged over :data:`DEFAULTS` and validated.

An unknown key (a typo) is an error that lists the valid keys at that level. Relative paths in a config
are relative to the repository root (where the pipeline runs).
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from crack_utils.study.config_schema import ConfigError, check_values
from crack_utils.distance import DEFAULT_NORMALIZATION, DEFAULT_RADIUS
from crack_utils import paper
from crack_utils.losses import DEFAULT_DIST_MODE
from crack_utils.model import DEFAULT_DECODER_CHANNELS, DEFAULT_ENCODER
from crack_utils.study.layout import run_tag

DEFAULTS: dict = {
    "name": None,                      # results go to results/<name>/; defaults to the file's stem
    "description": "",
    "data": {
        "source": "synthetic",         # "synthetic" (generated into results/<name>/01_data/synthetic/) or "folder"
        "root": None,                  # for "folder": a dataset folder (images/ + masks/), a folder of them, or Kaggle's
        "datasets": "all",             # for "folder": list of dataset folder names under root, or "all"
        "synthetic": {"n_images": 240, "size": 192, "seed": 0, "crack_free_fraction": 0.15},
        "max_pairs_per_dataset": None,  # seeded subsample per dataset (whole photos), None = all
        "test_dataset": None,          # hold one dataset out as the whole test set
        "exclusions_file": "data/exclusions.csv",
        "split_seed": 0,
        "fractions": list(paper.SPLIT_FRACTIONS),
        "screening": {"min_darker_by": 0.0, "max_crack_fraction": 0.5, "max_width": 6.0, "wide_min_darker_by": 10.0},
    },
    "image_size": paper.IMAGE_SIZE,
    "distance": {"normalization": DEFAULT_NORMALIZATION, "radius": DEFAULT_RADIUS},
    # decoder_channels: widths of the five U-Net decoder blocks (smp's default; the CPU demo halves them);
    # crack_prior: the output layer's starting crack probability (None: smp's init, 0.5; see crack_utils.model)
    "model": {"encoder": DEFAULT_ENCODER, "encoder_weights": None, "dropout": paper.DROPOUT,
              "decoder_channels": list(DEFAULT_DECODER_CHANNELS), "crack_prior": None},
    "training": {"epochs": paper.EPOCHS, "batch_size": paper.BATCH_SIZE, "lr": paper.LR, "samples_per_epoch": None,
                 "num_workers": 0, "device": "auto", "deterministic": True, "amp": "auto",
                 # training-length study: epochs after which the best weights so far are evaluated too
                 # (04_evaluate/<name>-epoch<k>-seed<s>/), e.g. [1, 2, 5, 10]; [] for none
                 "snapshot_epochs": [],
                 # "constant" (the paper's) or "cosine" (annealed to 0 over the epochs; the CPU demo)
                 "lr_schedule": "constant",
                 # train each training to its plateau: one not on it after `epochs` (training.plateau_status)
                 # is extended two epochs at a time, from its checkpoint, up to this many; null: `epochs` only
                 "plateau_max_epochs": None,
                 # where batches are made: "auto" (on the GPU when training on CUDA), "loader" or "device"
                 "batches": "auto"},
    "losses": list(paper.TABLE1_LOSSES),
    "loss_options": {"distance": {"alpha": paper.ALPHA, "mode": DEFAULT_DIST_MODE}},
    "seeds": [0],
    # Ablations and peer losses beyond the paper: named trainings, each {loss: <name>, normalization:,
    # radius: (optional), other keys = options of that loss}, trained for `variant_seeds`
    # (None = the same seeds as `losses`), e.g. {distance_alpha2: {loss: distance, alpha: 2.0}}
    "variants": {},
    "variant_seeds": None,
    "evaluation": {"threshold": 0.5, "checkpoint": "best", "extra_folder": None},
    "figure": {"n_examples": 4},
}
# keys whose value is a free-form mapping (not checked key by key)
_FREE_FORM = {("loss_options",), ("data", "screening"), ("variants",)}
# free-form mappings merged entry by entry over their defaults
_MERGED_PER_ENTRY = {("loss_options",)}
VARIANT_KEYS = ("loss", "normalization", "radius")  # the other keys of a variant are loss options


def _merge(base: dict, override: dict, path: tuple, source: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = ".".join(path + (key,))
        if key not in base:
            raise ConfigError(f"{source}: unknown key {where!r}; valid keys here: {', '.join(base)}")
        if isinstance(base[key], dict) and path + (key,) not in _FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {where!r} must be a mapping with keys {', '.join(base[key])}")
            out[key] = _merge(base[key], value, path + (key,), source)
        elif path + (key,) in _MERGED_PER_ENTRY and isinstance(value, dict):
            # a loss's options over its defaults, the other losses' defaults kept (options for clDice must
            # not drop the Distance-based Loss's alpha)
            out[key] = {**base[key], **{name: ({**base[key].get(name, {}), **options} if isinstance(options, dict)
                                               else options) for name, options in value.items()}}
        else:
            out[key] = value
    return out


def load_config(path: str | Path) -> dict:
    """Read a YAML study config, fill defaults, validate; returns a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    config = _merge(DEFAULTS, raw, (), str(path))
    config["name"] = config["name"] or path.stem
    validate_config(config, str(path))
    return config


def recorded_as(config: dict, recorded: dict) -> bool:
    """Whether a study's record (``results/<name>/study_config.json``, :func:`~crack_utils.study.layout.read_study_config`)
    is ``config``: equal, except that keys a later version added with a ``None`` default (off: the behaviour
    before they existed, e.g. ``training.plateau_max_epochs``) may be absent from an older record."""
    import json

    def as_recorded(planned, stored):
        if not isinstance(planned, dict) or not isinstance(stored, dict):
            return planned
        return {k: as_recorded(v, stored.get(k)) for k, v in planned.items() if not (v is None and k not in stored)}

    return as_recorded(json.loads(json.dumps(config, default=str)), recorded) == recorded


def validate_config(config: dict, source: str = "config") -> None:
    """Check every value against the schema (:mod:`crack_utils.study.config_schema`, the only check of single
    values), then the rules between values here; raise :class:`ConfigError` naming ``source`` and the key.
    Paths on disk are checked by :func:`check_paths`."""
    check_values(config, source)
    _validate_data(config, source)
    _validate_variants(config, source)
    t = config["training"]
    if t["snapshot_epochs"] and t["lr_schedule"] != "constant":
        raise ConfigError(f"{source}: training.snapshot_epochs needs lr_schedule: constant (a snapshot of a "
                          f"{t['lr_schedule']} schedule is not what a shorter training would give)")
    snapshots = t["snapshot_epochs"] or []
    if t["plateau_max_epochs"] is not None and (t["lr_schedule"] != "constant" or t["plateau_max_epochs"] < t["epochs"]
                                                or any(k >= t["epochs"] for k in snapshots)):
        raise ConfigError(f"{source}: training.plateau_max_epochs ({t['plateau_max_epochs']}) needs lr_schedule: "
                          f"constant (only a constant-rate training continues as if it had been longer), at "
                          f"least training.epochs ({t['epochs']}), and snapshot_epochs below training.epochs "
                          f"(a budget at the last epoch would be the training's own evaluation only until it "
                          f"is extended), got {snapshots!r}")
    if not all(k <= t["epochs"] for k in snapshots):
        raise ConfigError(f"{source}: training.snapshot_epochs must be a list of epochs between 1 and "
                          f"training.epochs ({t['epochs']}), got {snapshots!r}")


def _validate_data(config: dict, source: str) -> None:
    """``data.root`` only with ``source: folder`` (and required there); options of each loss it accepts."""
    from crack_utils.losses import make_loss

    data = config["data"]
    if data["source"] == "synthetic" and data["root"] is not None:
        raise ConfigError(f"{source}: data.root is {data['root']!r} but data.source is 'synthetic' (the default), "
                          "which generates its own data and reads no folder; to read your folder add "
                          "`source: folder` under data:, or remove data.root for synthetic data")
    if data["source"] == "synthetic" and data["datasets"] != "all":
        raise ConfigError(f"{source}: data.datasets is only read with data.source: folder")
    if data["source"] == "folder" and data["root"] is None:
        raise ConfigError(f"{source}: data.source is 'folder' but data.root is not set; give the folder that holds "
                          "images/ + masks/, a folder of such dataset folders, or the Kaggle train|test layout")
    for loss in config["losses"]:
        try:
            make_loss(loss, **config["loss_options"].get(loss, {}))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: loss_options.{loss}: {err}") from None


def check_paths(config: dict, stages: list[str] | None = None, source: str = "config") -> None:
    """Check, before anything runs, the paths the ``stages`` (None: all) will read: ``data.root`` and the
    dataset folders it names (source ``folder``) and ``data.exclusions_file`` for the data stage;
    ``evaluation.extra_folder`` for the evaluate stage, which must exist or be the synthetic folder this
    study's data stage makes (``results/<name>/01_data/synthetic/<n..-s..-seed..>``, when it runs too).
    Relative paths are relative to the repository root. Raises :class:`ConfigError` naming the key."""
    from crack_utils.data_source import SYNTHETIC_SUBDIR, synthetic_name
    from crack_utils.paths import from_repo
    from crack_utils.study.layout import data_dir, study_dir

    data = config["data"]
    runs_data = stages is None or "data" in stages
    runs_evaluate = stages is None or "evaluate" in stages
    if data["source"] == "folder" and runs_data:
        root = from_repo(data["root"])
        if not root.is_dir():
            raise ConfigError(f"{source}: data.root {data['root']!r} does not exist or is not a folder "
                              f"(looked at {root})")
        named = [] if data["datasets"] == "all" else list(data["datasets"])
        for key, name in [("data.datasets", n) for n in named] + [("data.test_dataset", data["test_dataset"])]:
            if name is not None and not (root / name).is_dir() and name != root.name:
                raise ConfigError(f"{source}: {key} names {name!r}, but {root / name} is not a folder")
    excl = data["exclusions_file"]
    if excl is not None and runs_data and not from_repo(excl).is_file():
        raise ConfigError(f"{source}: data.exclusions_file {excl!r} not found; give a CSV with columns id, reason, "
                          "or null for no hand-kept exclusions")
    extra = config["evaluation"]["extra_folder"]
    if extra is not None and runs_evaluate and not from_repo(extra).is_dir():
        own = None
        if data["source"] == "synthetic":
            syn = data["synthetic"]
            own = (data_dir(study_dir(config["name"])) / SYNTHETIC_SUBDIR
                   / synthetic_name(syn["n_images"], syn["size"], syn["seed"])).as_posix()
        if own is None or Path(extra).as_posix().rstrip("/") != own or not runs_data:
            raise ConfigError(
                f"{source}: evaluation.extra_folder {extra!r} does not exist"
                + (f" and this study does not make it (its synthetic data will be {own!r})" if own
                   else " (this study reads data.root and makes no synthetic data)")
                + "; point it at an images/ + masks/ folder, or remove it")


def _validate_variants(config: dict, source: str) -> None:
    """The rules between a variant and the rest of the config (each variant's own values are the schema's):
    its name is not a loss of ``losses``, and its loss accepts its options merged over ``loss_options``."""
    from crack_utils.losses import make_loss

    for name, spec in (config["variants"] or {}).items():
        where = f"{source}: variant {name!r}"
        if name in config["losses"]:
            raise ConfigError(f"{where} has the name of a loss in `losses`; give it its own name")
        try:
            make_loss(spec["loss"], **variant_loss_options(config, name))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: {err}") from None


def variant_loss_options(config: dict, name: str) -> dict:
    """Loss options of a variant: ``loss_options`` of its loss, overridden by the variant's own keys."""
    spec = config["variants"][name]
    own = {k: v for k, v in spec.items() if k not in VARIANT_KEYS}
    return {**config["loss_options"].get(spec["loss"], {}), **own}


def variant_seeds(config: dict) -> list[int]:
    """The seeds the variants are trained with, sorted: ``variant_seeds``, or the study's ``seeds`` when it
    is null; empty for a config without variants."""
    if not config["variants"]:
        return []
    seeds = config["variant_seeds"] if config["variant_seeds"] is not None else config["seeds"]
    return sorted(set(int(s) for s in seeds))


def trainings(config: dict) -> list[dict]:
    """Every training of a study, in order: the losses of Table 1 for ``seeds``, seed by seed (every loss of
    the first seed, then every loss of the next: a study stopped part way has whole seeds of Table 1, and
    runs on Dask are submitted, so prioritized, in this order), then the variants for ``variant_seeds``, seed by
    seed too (every variant of the first seed, then of the next).
    Each: ``{"name", "loss", "options", "normalization", "radius", "seed", "tag"}``,
    ``tag`` = ``<name>-seed<k>`` (its folder under 03_train/, 04_evaluate/ and checkpoints/)."""
    dist = config["distance"]
    out = []
    for seed in config["seeds"]:
        for loss in config["losses"]:
            out.append({"name": loss, "loss": loss, "options": dict(config["loss_options"].get(loss, {})),
                        "normalization": dist["normalization"], "radius": dist["radius"], "seed": seed})
    for seed in variant_seeds(config):
        for name, spec in (config["variants"] or {}).items():
            out.append({"name": name, "loss": spec["loss"], "options": variant_loss_options(config, name),
                        "normalization": spec.get("normalization", dist["normalization"]),
                        "radius": spec.get("radius", dist["radius"]), "seed": seed})
    for item in out:
        item["tag"] = run_tag(item["name"], item["seed"])
    return out
