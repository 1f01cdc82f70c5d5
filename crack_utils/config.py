"""Study configs: YAML files in ``configs/``, merged over :data:`DEFAULTS` and validated.

An unknown key (a typo) is an error that lists the valid keys at that level. Relative paths in a config
are relative to the repository root (where the pipeline runs).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

from crack_utils.distance import NORMALIZATIONS
from crack_utils.losses import LOSSES

DEFAULTS: dict = {
    "name": None,                      # results go to results/<name>/; defaults to the file's stem
    "description": "",
    "data": {
        "source": "synthetic",         # "synthetic" (generated here) or "folder" (files on disk)
        "root": "data/synthetic",      # data root; for "folder" the folder holding the datasets
        "datasets": "all",             # list of dataset folder names under root, or "all"
        "synthetic": {"n_images": 240, "size": 192, "seed": 0, "crack_free_fraction": 0.15},
        "max_pairs_per_dataset": None,  # seeded subsample per dataset (whole photos), None = all
        "test_dataset": None,          # hold one dataset out as the whole test set
        "exclusions_file": "data/exclusions.csv",
        "split_seed": 0,
        "fractions": [0.8, 0.1, 0.1],
        "screening": {"min_darker_by": 0.0, "max_crack_fraction": 0.5, "max_width": 6.0, "wide_min_darker_by": 10.0},
    },
    "image_size": 128,
    "distance": {"normalization": "radius", "radius": 20.0},
    "model": {"encoder": "resnet18", "encoder_weights": None, "dropout": 0.3},
    "training": {"epochs": 50, "batch_size": 25, "lr": 5e-4, "samples_per_epoch": None,
                 "num_workers": 0, "device": "auto", "deterministic": True, "amp": "auto"},
    "losses": ["bce", "dice", "distance"],
    "loss_options": {"distance": {"alpha": 4.0, "mode": "soft"}},
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
VARIANT_KEYS = ("loss", "normalization", "radius")  # the other keys of a variant are loss options


class ConfigError(ValueError):
    """A study config that cannot be used; the message names the file and key."""


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


def validate_config(config: dict, source: str = "config") -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(config["name"])):
        raise ConfigError(f"{source}: name {config['name']!r} must use letters, digits, '_', '-', '.' only")
    if config["data"]["source"] not in ("synthetic", "folder"):
        raise ConfigError(f"{source}: data.source must be 'synthetic' or 'folder', got {config['data']['source']!r}")
    bad = [loss for loss in config["losses"] if loss not in LOSSES]
    if bad or not config["losses"]:
        raise ConfigError(f"{source}: unknown loss(es) {bad}; valid: {', '.join(LOSSES)}")
    for loss in config["loss_options"]:
        if loss not in LOSSES:
            raise ConfigError(f"{source}: loss_options names unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    if config["distance"]["normalization"] not in NORMALIZATIONS:
        raise ConfigError(f"{source}: distance.normalization must be one of {', '.join(NORMALIZATIONS)}")
    if not config["seeds"] or not all(isinstance(s, int) for s in config["seeds"]):
        raise ConfigError(f"{source}: seeds must be a non-empty list of integers")
    _validate_variants(config, source)
    if config["image_size"] % 32:
        raise ConfigError(f"{source}: image_size must be a multiple of 32 (U-Net), got {config['image_size']}")
    if config["evaluation"]["checkpoint"] not in ("best", "last"):
        raise ConfigError(f"{source}: evaluation.checkpoint must be 'best' or 'last'")
    t = config["training"]
    if t["epochs"] < 1 or t["batch_size"] < 1 or t["lr"] <= 0:
        raise ConfigError(f"{source}: training.epochs, batch_size must be >= 1 and lr > 0")


def _validate_variants(config: dict, source: str) -> None:
    """Each variant names a known loss, a known normalization and options that loss accepts."""
    from crack_utils.losses import make_loss

    variants = config["variants"] or {}
    if not isinstance(variants, dict):
        raise ConfigError(f"{source}: variants must be a mapping of name -> settings")
    seeds = config["variant_seeds"]
    if seeds is not None and (not seeds or not all(isinstance(s, int) for s in seeds)):
        raise ConfigError(f"{source}: variant_seeds must be a non-empty list of integers (or null)")
    for name, spec in variants.items():
        where = f"{source}: variant {name!r}"
        if not re.fullmatch(r"[A-Za-z0-9_.]+", str(name)):
            raise ConfigError(f"{where}: names use letters, digits, '_' and '.' only")
        if name in config["losses"]:
            raise ConfigError(f"{where} has the name of a loss in `losses`; give it its own name")
        if not isinstance(spec, dict) or spec.get("loss") not in LOSSES:
            raise ConfigError(f"{where} needs `loss: <name>` with a name from: {', '.join(LOSSES)}")
        if spec.get("normalization", config["distance"]["normalization"]) not in NORMALIZATIONS:
            raise ConfigError(f"{where}: normalization must be one of {', '.join(NORMALIZATIONS)}")
        try:
            make_loss(spec["loss"], **variant_loss_options(config, name))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: {err}") from None


def variant_loss_options(config: dict, name: str) -> dict:
    """Loss options of a variant: ``loss_options`` of its loss, overridden by the variant's own keys."""
    spec = config["variants"][name]
    own = {k: v for k, v in spec.items() if k not in VARIANT_KEYS}
    return {**config["loss_options"].get(spec["loss"], {}), **own}


def trainings(config: dict) -> list[dict]:
    """Every training of a study, in order: the losses of Table 1 for ``seeds``, then the variants for
    ``variant_seeds``. Each: ``{"name", "loss", "options", "normalization", "radius", "seed", "tag"}``,
    ``tag`` = ``<name>-seed<k>`` (its folder under 03_train/, 04_evaluate/ and checkpoints/)."""
    dist = config["distance"]
    out = []
    for loss in config["losses"]:
        for seed in config["seeds"]:
            out.append({"name": loss, "loss": loss, "options": dict(config["loss_options"].get(loss, {})),
                        "normalization": dist["normalization"], "radius": dist["radius"], "seed": seed})
    variant_seeds = config["variant_seeds"] if config["variant_seeds"] is not None else config["seeds"]
    for name, spec in (config["variants"] or {}).items():
        for seed in variant_seeds:
            out.append({"name": name, "loss": spec["loss"], "options": variant_loss_options(config, name),
                        "normalization": spec.get("normalization", dist["normalization"]),
                        "radius": spec.get("radius", dist["radius"]), "seed": seed})
    for item in out:
        item["tag"] = f"{item['name']}-seed{item['seed']}"
    return out
