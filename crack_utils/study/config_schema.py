"""What each study-config value may be: type, range and allowed names, checked before anything runs.

:func:`check_values` walks :data:`SCHEMA` (dotted key -> rule) over a merged config, converts what a
person obviously meant (``lr: 1e-3``, which YAML 1.1 reads as the *text* "1e-3", becomes 0.001;
``epochs: 10.0`` becomes 10) and raises :class:`ConfigError` naming the key, what it expects and what it
got (``epochs: 2.5``, ``epochs: three``, ``dropout: 1.5``, ``device: gpu``).
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

_NUMBER_TEXT = re.compile(r"^\s*[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_MISSING = object()


class ConfigError(ValueError):
    """A study config that cannot be used; the message names the file and key."""


class _Bad(Exception):
    """A value that breaks its rule; the argument says what the rule expects."""


def as_number(value: Any) -> Any:
    """``value`` as a float when it is a number written as text (``"1e-3"``, ``"5e-4"``); else unchanged."""
    if isinstance(value, str) and _NUMBER_TEXT.match(value):
        return float(value.replace("_", ""))
    return value


def numbers_in(value: Any) -> Any:
    """:func:`as_number` applied to every value inside nested mappings and lists (free-form options)."""
    if isinstance(value, dict):
        return {k: numbers_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [numbers_in(v) for v in value]
    return as_number(value)


def _range_text(low, high, low_open, high_open) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def integer(low: int | None = None, high: int | None = None, null: bool = False) -> Callable:
    """A whole number (``10.0`` and ``"1e3"`` are accepted as 10 and 1000; ``2.5`` and ``True`` are not)."""
    expected = "a whole number" + (f" {_range_text(low, high, False, False)}" if low is not None or high is not None else "")
    expected += " or null" if null else ""

    def check(value):
        if value is None and null:
            return None
        value = as_number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value != int(value):
            raise _Bad(expected)
        value = int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise _Bad(expected)
        return value
    return check


def number(low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
           null: bool = False) -> Callable:
    """A finite number within the bounds (``"1e-3"`` written as text is read as 0.001; whole numbers stay
    ``int`` so that recorded parameters do not change)."""
    bounds = _range_text(low, high, low_open, high_open)
    expected = "a number" + (f" {bounds}" if bounds else "") + (" or null" if null else "")

    def check(value):
        if value is None and null:
            return None
        value = as_number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Bad(expected)
        if (low is not None and (value <= low if low_open else value < low)) or \
                (high is not None and (value >= high if high_open else value > high)):
            raise _Bad(expected)
        return value
    return check


def boolean() -> Callable:
    def check(value):
        if not isinstance(value, bool):
            raise _Bad("true or false")
        return value
    return check


def text(null: bool = False, pattern: str | None = None, what: str = "text", empty: bool = False) -> Callable:
    expected = what + (" or null" if null else "")

    def check(value):
        if value is None and null:
            return None
        if not isinstance(value, str) or not (empty or value.strip()) or (pattern and not re.fullmatch(pattern, value)):
            raise _Bad(expected)
        return value
    return check


def choice(*options, null: bool = False) -> Callable:
    expected = "one of " + ", ".join(repr(o) for o in options) + (" or null" if null else "")

    def check(value):
        if value is None and null:
            return None
        if any(type(value) is type(o) and value == o for o in options):
            return value
        raise _Bad(expected)
    return check


def list_of(item: Callable, what: str, nonempty: bool = True, null: bool = False, length: int | None = None) -> Callable:
    expected = (f"a list of {length} " if length else "a non-empty list of " if nonempty else "a list of ") + what
    expected += " or null" if null else ""

    def check(value):
        if value is None and null:
            return None
        if not isinstance(value, list) or (nonempty and not value) or (length and len(value) != length):
            raise _Bad(expected)
        out = []
        for v in value:
            try:
                out.append(item(v))
            except _Bad as bad:
                raise _Bad(f"{expected} ({v!r} is not {bad.args[0]})") from None
        return out
    return check


def multiple_of(step: int, low: int) -> Callable:
    """A whole number >= ``low`` that is a multiple of ``step`` (the U-Net halves the image five times)."""
    whole = integer(low)

    def check(value):
        value = whole(value)
        if value % step:
            raise _Bad(f"a multiple of {step} (the U-Net halves it five times)")
        return value
    return check


def all_or_names() -> Callable:
    def check(value):
        if value == "all":
            return value
        if isinstance(value, str) and value.strip():
            return [value]
        return list_of(text(), "folder names")(value)
    return check


def mapping(values: Callable | None = None, what: str = "a mapping") -> Callable:
    """A mapping (free-form keys); numbers written as text inside it are read as numbers."""
    def check(value):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _Bad(what)
        value = numbers_in(value)
        if values is not None:
            value = {k: values(v) for k, v in value.items()}
        return value
    return check


def options_of(names) -> Callable:
    """A mapping of loss name (one of ``names``) -> mapping of its options (checked by the loss itself)."""
    per_loss = mapping(mapping(what="a mapping of option -> value"), what="a mapping of loss -> options")

    def check(value):
        value = per_loss(value)
        unknown = sorted(str(k) for k in value if k not in names)
        if unknown:
            raise _Bad(f"a mapping of loss -> options, each loss one of {', '.join(names)} (unknown: {', '.join(unknown)})")
        return value
    return check


def variants_of(losses, normalizations) -> Callable:
    """A mapping of variant name (letters, digits, '_', '.') -> ``{loss: <one of losses>, normalization:
    (one of normalizations), radius: (a number > 0), <options of that loss>}``; whether the loss accepts
    those options is a rule between values (crack_utils.study.config)."""
    radius = number(0.0, low_open=True)

    def check(value):
        value = mapping(what="a mapping of name -> settings")(value)
        for name, spec in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.]+", str(name)):
                raise _Bad(f"a mapping of variant names of letters, digits, '_' and '.' ({name!r} is not)")
            if not isinstance(spec, dict) or spec.get("loss") not in losses:
                raise _Bad(f"a mapping in which each variant needs `loss: <name>` with a name from "
                           f"{', '.join(losses)} ({name!r} has {spec!r})")
            if "normalization" in spec and spec["normalization"] not in normalizations:
                raise _Bad(f"a mapping in which a variant's normalization must be one of {', '.join(normalizations)} "
                           f"({name!r} has {spec['normalization']!r})")
            if "radius" in spec:
                try:
                    spec["radius"] = radius(spec["radius"])
                except _Bad as bad:
                    raise _Bad(f"a mapping in which a variant's radius is {bad.args[0]} ({name!r} has "
                               f"{spec['radius']!r})") from None
        return value
    return check


def amp() -> Callable:
    def check(value):
        if value == "auto" or isinstance(value, bool):
            return value
        raise _Bad("'auto', true or false")
    return check


SCREENING_KEYS = ("min_darker_by", "max_crack_fraction", "max_width", "wide_min_darker_by")


def screening() -> Callable:
    def check(value):
        value = mapping(what="a mapping of screening rules")(value)
        unknown = sorted(set(value) - set(SCREENING_KEYS))
        if unknown:
            raise _Bad(f"a mapping with keys from {', '.join(SCREENING_KEYS)} (unknown: {', '.join(map(str, unknown))})")
        for key, rule in value.items():
            if rule is not None and (isinstance(rule, bool) or not isinstance(rule, (int, float))):
                raise _Bad(f"a mapping of rule -> number or null ({key} is {rule!r})")
        if value.get("wide_min_darker_by", 0.0) is None:
            raise _Bad("a mapping in which wide_min_darker_by is a number (switch the width rule off with max_width: null)")
        return value
    return check


def fractions() -> Callable:
    def check(value):
        shares = list_of(number(0.0, 1.0), "numbers in [0, 1]", length=3)(value)
        if not math.isclose(sum(shares), 1.0, abs_tol=1e-6):
            raise _Bad("three shares (train, val, test) between 0 and 1 that sum to 1")
        return shares
    return check


SEED = integer(0)
SCHEMA: dict[str, Callable] = {
    "name": text(null=True, pattern=r"[A-Za-z0-9_.-]+", what="a name of letters, digits, '_', '-', '.'"),
    "description": text(null=True, empty=True),
    "data.source": choice("synthetic", "folder"),
    "data.root": text(null=True, what="a folder path"),
    "data.datasets": all_or_names(),
    "data.synthetic.n_images": integer(1),
    "data.synthetic.size": integer(16),
    "data.synthetic.seed": SEED,
    "data.synthetic.crack_free_fraction": number(0.0, 1.0),
    "data.max_pairs_per_dataset": integer(1, null=True),
    "data.test_dataset": text(null=True, what="a dataset folder name"),
    "data.exclusions_file": text(null=True, what="a CSV file path"),
    "data.split_seed": SEED,
    "data.fractions": fractions(),
    "data.screening": screening(),
    "image_size": multiple_of(32, 32),
    "distance.normalization": None,  # filled in by check_values (names from crack_utils.distance)
    "distance.radius": number(0.0, low_open=True),
    "model.encoder": text(what="an encoder name of segmentation-models-pytorch, e.g. 'resnet18'"),
    "model.encoder_weights": text(null=True, what="a weights name such as 'imagenet'"),
    "model.dropout": number(0.0, 1.0, high_open=True),
    "model.crack_prior": number(0.0, 1.0, low_open=True, high_open=True, null=True),
    "model.decoder_channels": list_of(integer(1), "whole numbers >= 1 (one per decoder block)", length=5),
    "training.epochs": integer(1),
    "training.batch_size": integer(1),
    "training.lr": number(0.0, low_open=True),
    "training.samples_per_epoch": integer(1, null=True),
    "training.num_workers": integer(0),
    "training.device": text(pattern=r"auto|cpu|mps|cuda(:\d+)?", what="'auto', 'cpu', 'cuda', 'cuda:<n>' or 'mps'"),
    "training.deterministic": boolean(),
    "training.amp": amp(),
    "training.lr_schedule": choice("constant", "cosine"),
    "training.batches": choice("auto", "loader", "device"),
    "training.plateau_max_epochs": integer(1, null=True),
    "training.snapshot_epochs": list_of(integer(1), "whole numbers >= 1", nonempty=False, null=True),
    "losses": None,  # filled in by check_values (the names of crack_utils.losses.LOSSES)
    "loss_options": None,  # filled in by check_values (keys: the names of crack_utils.losses.LOSSES)
    "seeds": list_of(SEED, "whole numbers >= 0"),
    "variants": None,  # filled in by check_values (loss and normalization names of their modules)
    "variant_seeds": list_of(SEED, "whole numbers >= 0", null=True),
    "evaluation.threshold": number(0.0, 1.0, low_open=True, high_open=True),
    "evaluation.checkpoint": choice("best", "last"),
    "evaluation.extra_folder": text(null=True, what="a folder path"),
    "figure.n_examples": integer(1),
}


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value


def check_values(config: dict, source: str = "config") -> None:
    """Check (and normalise in place) every value of a merged config against :data:`SCHEMA`; raise
    :class:`ConfigError` naming ``source``, the key, what it expects and the value it got."""
    from crack_utils.distance import NORMALIZATIONS
    from crack_utils.losses import LOSSES

    rules = dict(SCHEMA)
    rules["distance.normalization"] = choice(*NORMALIZATIONS)
    rules["losses"] = list_of(choice(*LOSSES), "loss names")
    rules["loss_options"] = options_of(LOSSES)
    rules["variants"] = variants_of(LOSSES, NORMALIZATIONS)
    for key, rule in rules.items():
        value = _get(config, key)
        if value is _MISSING:
            continue
        try:
            _set(config, key, rule(value))
        except _Bad as bad:
            raise ConfigError(f"{source}: {key} must be {bad.args[0]}, got {value!r}") from None
    _check_encoder(config, source)


def _check_encoder(config: dict, source: str) -> None:
    """A non-default encoder must be one segmentation-models-pytorch knows (imported only then: slow)."""
    from crack_utils.model import DEFAULT_ENCODER

    encoder = config["model"]["encoder"]
    if encoder == DEFAULT_ENCODER:
        return
    from crack_utils.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from segmentation_models_pytorch.encoders import get_encoder_names

    names = get_encoder_names()
    if encoder not in names:
        import difflib

        close = difflib.get_close_matches(encoder, names, n=3)
        raise ConfigError(f"{source}: model.encoder {encoder!r} is not an encoder of segmentation-models-pytorch"
                          + (f"; did you mean {', '.join(close)}?" if close else "; e.g. resnet18, resnet34"))
