"""The ERASE profile: versioned, pure data.

A profile holds what calibration found (entropy thresholds, keep ratios per
complexity level, Stage 2 layers) and where it came from. It holds no
behaviour: the runtime interprets it. Parsing is strict: an unknown key, a
wrong type or an inconsistent value is a `ProfileError` naming the file and
the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import numbers
import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import limits
from .errors import EraseError, EraseTypeError, ProfileError
from .fileio import atomic_write

SCHEMA_VERSION = 1
GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)
ENTROPY_BINS = 256
ENTROPY_LOG_BASE = "e"
ENTROPY_STATISTIC = "median_lower"
GRAYSCALE_ROUNDINGS = ("floor", "round")  # floor: the reference's binning; round: profiles before 0.2
SOURCES = ("published", "calibrated", "manual")
MAX_PROFILE_VERSION = 2**31 - 1
MAX_NAME_LENGTH = 128
ADAVTP_TAU_MAX_RULES = ("p95_nearest_cosine",)  # see erase.adavtp.TAU_MAX_RULE


@dataclass(frozen=True)
class Fingerprint:
    """What a profile assumes about the architecture it was calibrated on."""

    family: str
    pixels_per_token: int
    num_layers: int
    hidden_size: int


@dataclass(frozen=True)
class ModelInfo:
    id: str
    fingerprint: Fingerprint
    revision: str | None = None


@dataclass(frozen=True)
class ImageProcessing:
    """Processor pixel range at calibration time; entropy depends on the resize."""

    min_pixels: int | None = None
    max_pixels: int | None = None


@dataclass(frozen=True)
class EntropySettings:
    grayscale_weights: tuple[float, float, float] = GRAYSCALE_WEIGHTS
    bins: int = ENTROPY_BINS
    log_base: str = ENTROPY_LOG_BASE
    statistic: str = ENTROPY_STATISTIC
    grayscale_rounding: str = "floor"


@dataclass(frozen=True)
class Stage1:
    thresholds: tuple[float, ...]
    keep_ratios: tuple[float, ...]
    entropy: EntropySettings = field(default_factory=EntropySettings)

    @property
    def num_levels(self) -> int:
        return len(self.keep_ratios)


@dataclass(frozen=True)
class Stage2:
    early_layer: int
    late_layer: int
    early_levels: tuple[int, ...]
    final_keep_ratio: float


@dataclass(frozen=True)
class Calibration:
    source: str
    toolkit_version: str
    date: str
    alpha: float | None = None
    iterations: int | None = None
    seed: int | None = None
    sampler: str | None = None
    datasets: dict[str, int] = field(default_factory=dict)
    accuracy: float | None = None
    objective: float | None = None
    paper: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class AdaVTPReference:
    """AdaVTP's reference statistics (erase.adavtp), computed on calibration images."""

    erank_avg: float  # mean effective rank of the images' vision features
    tau_max: float  # cap of the cosine-distance threshold
    images: int  # reference images they were computed on
    tau_max_rule: str = ADAVTP_TAU_MAX_RULES[0]


@dataclass(frozen=True)
class Methods:
    """Statistics other pruning methods read from the profile; absent in profiles written before them."""

    adavtp: AdaVTPReference | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


@dataclass(frozen=True)
class Profile:
    name: str
    profile_version: int
    model: ModelInfo
    image_processing: ImageProcessing
    stage1: Stage1
    stage2: Stage2
    calibration: Calibration
    schema_version: int = SCHEMA_VERSION
    methods: Methods = field(default_factory=Methods)

    def __post_init__(self) -> None:
        _check_profile(self, "<profile>")

    @property
    def num_levels(self) -> int:
        return self.stage1.num_levels

    def level_of(self, global_entropy: float) -> int:
        """Complexity level, 1 (most complex) .. N (simplest)."""
        return 1 + sum(1 for t in self.stage1.thresholds if global_entropy <= t)

    def stage2_layer(self, level: int) -> int:
        s2 = self.stage2
        return s2.early_layer if level in s2.early_levels else s2.late_layer

    def check_depth(self, num_layers: int) -> None:
        """Refuse a profile whose Stage 2 layers do not exist in the model."""
        for name in ("early_layer", "late_layer"):
            layer = getattr(self.stage2, name)
            if layer >= num_layers:
                raise ProfileError(
                    f"profile {self.name!r}: stage2.{name} = {layer} is beyond the model's depth "
                    f"({num_layers} decoder layers, valid 0..{num_layers - 1})"
                )

    def to_dict(self) -> dict[str, Any]:
        out = _to_plain(self)
        methods = {k: v for k, v in out.pop("methods").items() if v is not None}
        if methods:  # written only when there is something: older readers see the same file as before
            out["methods"] = methods
        return out

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile atomically (temp file, then rename)."""
        try:
            return atomic_write(path, self.to_yaml())
        except EraseTypeError:
            raise
        except EraseError as exc:
            raise ProfileError(str(exc)) from None

    def replace(self, **changes: Any) -> "Profile":
        return dataclasses.replace(self, **changes)


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes lists of scalars on one line, for readable profiles."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out = {}
        # schema_version first so a reader sees it before anything else
        names = [f.name for f in dataclasses.fields(obj)]
        if "schema_version" in names:
            names.remove("schema_version")
            names.insert(0, "schema_version")
        for name in names:
            out[name] = _to_plain(getattr(obj, name))
        return out
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------- parsing

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 24


def _short(value: Any) -> str:
    """A bounded one-line repr: a hostile value never makes a huge message."""
    return _REPR.repr(value)


class _Reader:
    """Typed access to a YAML mapping that reports faults by dotted field path."""

    def __init__(self, data: Any, path: str, source: str):
        self.source = source
        self.path = path
        if not isinstance(data, Mapping):
            self.fail(f"expected a mapping, got {type(data).__name__}")
        self.data = dict(data)
        self.used: set[str] = set()

    def fail(self, msg: str, key: str | None = None) -> None:
        where = f"{self.path}.{key}" if self.path and key else (key or self.path or "profile")
        raise ProfileError(f"{self.source}: {where}: {msg}")

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                self.fail("missing required field", key)
            return None
        return self.data[key]

    def sub(self, key: str, required: bool = True) -> "_Reader | None":
        value = self._get(key, required)
        if value is None and not required:
            return None
        return _Reader(value, f"{self.path}.{key}" if self.path else key, self.source)

    def str(self, key: str, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is None:
            if required:
                self.fail("must not be null", key)
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(f"expected a non-empty string, got {_short(value)}", key)
        return value

    def int(
        self, key: str, required: bool = True, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self._get(key, required)
        if value is None:
            if required:
                self.fail("must not be null", key)
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected an integer, got {_short(value)}", key)
        if minimum is not None and value < minimum:
            self.fail(f"must be >= {minimum}, got {_short(value)}", key)
        if maximum is not None and value > maximum:
            self.fail(f"must be <= {maximum:,}, got {_short(value)}", key)
        return value

    def float(self, key: str, required: bool = True) -> float | None:
        value = self._get(key, required)
        if value is None:
            if required:
                self.fail("must not be null", key)
            return None
        return self.as_float(value, key)

    def as_float(self, value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(f"expected a finite number, got {_short(value)}", key)
        return float(value)

    def list(self, key: str) -> list[Any]:
        value = self._get(key, True)
        if not isinstance(value, list) or not value:
            self.fail(f"expected a non-empty list, got {_short(value)}", key)
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used, key=str)
        if unknown:
            self.fail(f"unknown key {_short(unknown[0])}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))


def profile_from_dict(data: Any, source: str = "<profile>") -> Profile:
    """Validate a parsed YAML document and build a `Profile`."""
    r = _Reader(data, "", source)
    version = r._get("schema_version", True)
    if isinstance(version, bool) or not isinstance(version, int):
        r.fail(f"expected an integer, got {_short(version)}", "schema_version")
    if version > SCHEMA_VERSION:
        r.fail(
            f"{version} is newer than this toolkit supports ({SCHEMA_VERSION}); upgrade erase-toolkit to read it",
            "schema_version",
        )
    if version < SCHEMA_VERSION:
        r.fail(
            f"{version} is older than this toolkit supports ({SCHEMA_VERSION}); "
            "recalibrate or rewrite the profile in the current format",
            "schema_version",
        )

    m = r.sub("model")
    fp = m.sub("fingerprint")
    fingerprint = Fingerprint(
        family=fp.str("family"),
        pixels_per_token=fp.int("pixels_per_token", minimum=1, maximum=limits.MAX_PIXELS_PER_TOKEN),
        num_layers=fp.int("num_layers", minimum=1, maximum=limits.MAX_LAYERS),
        hidden_size=fp.int("hidden_size", minimum=1, maximum=limits.MAX_HIDDEN_SIZE),
    )
    fp.done()
    model = ModelInfo(id=m.str("id"), fingerprint=fingerprint, revision=m.str("revision", required=False))
    m.done()

    ip = r.sub("image_processing")
    image_processing = ImageProcessing(
        min_pixels=ip.int("min_pixels", required=False, minimum=1, maximum=limits.MAX_PROCESSOR_PIXELS),
        max_pixels=ip.int("max_pixels", required=False, minimum=1, maximum=limits.MAX_PROCESSOR_PIXELS),
    )
    ip.done()

    s1 = r.sub("stage1")
    ent = s1.sub("entropy", required=False)
    entropy = EntropySettings(grayscale_rounding="round")  # written before the key existed: rounded
    if ent is not None:
        weights = tuple(ent.as_float(w, "grayscale_weights") for w in ent.list("grayscale_weights"))
        entropy = EntropySettings(
            grayscale_weights=weights,  # type: ignore[arg-type]
            bins=ent.int("bins"),
            log_base=ent.str("log_base"),
            statistic=ent.str("statistic"),
            grayscale_rounding=ent.str("grayscale_rounding", required=False) or "round",
        )
        ent.done()
    stage1 = Stage1(
        thresholds=tuple(s1.as_float(t, "thresholds") for t in s1.list("thresholds")),
        keep_ratios=tuple(s1.as_float(k, "keep_ratios") for k in s1.list("keep_ratios")),
        entropy=entropy,
    )
    s1.done()

    s2 = r.sub("stage2")
    levels = s2.list("early_levels")
    for lv in levels:
        if isinstance(lv, bool) or not isinstance(lv, int):
            s2.fail(f"expected integer levels, got {_short(lv)}", "early_levels")
    stage2 = Stage2(
        early_layer=s2.int("early_layer", minimum=0, maximum=limits.MAX_LAYERS),
        late_layer=s2.int("late_layer", minimum=0, maximum=limits.MAX_LAYERS),
        early_levels=tuple(levels),
        final_keep_ratio=s2.float("final_keep_ratio"),
    )
    s2.done()

    c = r.sub("calibration")
    ds = c._get("datasets", False) or {}
    if not isinstance(ds, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in ds.items()
    ):
        c.fail(f"expected a mapping of dataset name to item count, got {_short(ds)}", "datasets")
    date = c.str("date")
    if not _iso_date(date):
        c.fail(f"expected an ISO date (YYYY-MM-DD, optionally with a time), got {_short(date)}", "date")
    calibration = Calibration(
        source=c.str("source"),
        toolkit_version=c.str("toolkit_version"),
        date=date,
        alpha=c.float("alpha", required=False),
        iterations=c.int("iterations", required=False, minimum=0),
        seed=c.int("seed", required=False),
        sampler=c.str("sampler", required=False),
        datasets=dict(ds),
        accuracy=c.float("accuracy", required=False),
        objective=c.float("objective", required=False),
        paper=c.str("paper", required=False),
        notes=c.str("notes", required=False),
    )
    c.done()

    methods = Methods()
    ms = r.sub("methods", required=False)
    if ms is not None:
        a = ms.sub("adavtp", required=False)
        if a is not None:
            methods = Methods(
                adavtp=AdaVTPReference(
                    erank_avg=a.float("erank_avg"),
                    tau_max=a.float("tau_max"),
                    images=a.int("images", minimum=1),
                    tau_max_rule=a.str("tau_max_rule"),
                )
            )
            a.done()
        ms.done()

    name = r.str("name")
    why = _check_name(name)
    if why:
        r.fail(why, "name")
    profile_version = r.int("profile_version", minimum=1, maximum=MAX_PROFILE_VERSION)
    r.done()
    return _build(source, name, profile_version, model, image_processing, stage1, stage2, calibration, methods=methods)


def _iso_date(text: str) -> bool:
    """Whether `text` is an ISO date or date-time (dates stay strings: the YAML loader does not convert them)."""
    try:
        if len(text) <= 10:
            dt.date.fromisoformat(text)
        else:
            dt.datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return False
    return True


def _build(source: str, *args: Any, **kwargs: Any) -> Profile:
    # Re-tag the consistency errors raised in __post_init__ with the real source.
    try:
        return Profile(*args, **kwargs)
    except ProfileError as exc:
        raise ProfileError(str(exc).replace("<profile>", source, 1)) from None


def _check_name(name: Any) -> str | None:
    """Why `name` cannot name a profile (it becomes part of file names), or None."""
    if not isinstance(name, str) or not name.strip():
        return f"expected a non-empty string, got {_short(name)}"
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    if name in (".", "..") or any(c in name for c in "/\\") or not name.isprintable():
        return f"{_short(name)} cannot be a file name (no path separators or control characters)"
    return None


_INT = "int"
_NUMBER = "number"


def _check_types(p: Profile, fail: Any) -> None:
    """Types and allocation-sizing ranges of a profile built in code (the parser checks files itself)."""

    def check(where: str, value: Any, kind: str, lo: float | None = None, hi: float | None = None, optional: bool = False) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Real if kind == _NUMBER else numbers.Integral):
            fail(where, f"expected {'an integer' if kind == _INT else 'a number'}, got {_short(value)}")
        if kind == _NUMBER and not math.isfinite(value):
            fail(where, f"expected a finite number, got {value}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            fail(where, f"must be in {lo}..{hi:,}, got {_short(value)}" if hi is not None else f"must be >= {lo}, got {value}")

    for where, value, cls in (
        ("model", p.model, ModelInfo),
        ("model.fingerprint", getattr(p.model, "fingerprint", None), Fingerprint),
        ("image_processing", p.image_processing, ImageProcessing),
        ("stage1", p.stage1, Stage1),
        ("stage1.entropy", getattr(p.stage1, "entropy", None), EntropySettings),
        ("stage2", p.stage2, Stage2),
        ("calibration", p.calibration, Calibration),
    ):
        if not isinstance(value, cls):
            fail(where, f"expected erase.profile.{cls.__name__}, got {type(value).__name__}")
    why = _check_name(p.name)
    if why:
        fail("name", why)
    check("profile_version", p.profile_version, _INT, 1, MAX_PROFILE_VERSION)
    check("schema_version", p.schema_version, _INT)
    fp = p.model.fingerprint
    if not isinstance(fp.family, str) or not fp.family:
        fail("model.fingerprint.family", f"expected a non-empty string, got {_short(fp.family)}")
    check("model.fingerprint.pixels_per_token", fp.pixels_per_token, _INT, 1, limits.MAX_PIXELS_PER_TOKEN)
    check("model.fingerprint.num_layers", fp.num_layers, _INT, 1, limits.MAX_LAYERS)
    check("model.fingerprint.hidden_size", fp.hidden_size, _INT, 1, limits.MAX_HIDDEN_SIZE)
    for name in ("min_pixels", "max_pixels"):
        check(f"image_processing.{name}", getattr(p.image_processing, name), _INT, 1, limits.MAX_PROCESSOR_PIXELS, optional=True)
    for name in ("thresholds", "keep_ratios"):
        values = getattr(p.stage1, name)
        if not isinstance(values, (tuple, list)):
            fail(f"stage1.{name}", f"expected a list of numbers, got {type(values).__name__}")
        for i, v in enumerate(values):
            check(f"stage1.{name}[{i}]", v, _NUMBER)
    token_area = fp.pixels_per_token**2
    for name in ("min_pixels", "max_pixels"):
        bound = getattr(p.image_processing, name)
        if bound is not None and -(-bound // token_area) > limits.MAX_TOKENS_PER_IMAGE:
            fail(
                f"image_processing.{name}",
                f"{bound:,} pixels are {-(-bound // token_area):,} tokens of {fp.pixels_per_token} px, more than "
                f"{limits.MAX_TOKENS_PER_IMAGE:,} tokens per image",
            )
    n = len(p.stage1.keep_ratios)
    if n > limits.MAX_LEVELS:
        fail("stage1.keep_ratios", f"at most {limits.MAX_LEVELS} levels are supported, got {n}")
    s2 = p.stage2
    check("stage2.early_layer", s2.early_layer, _INT, 0, limits.MAX_LAYERS)
    check("stage2.late_layer", s2.late_layer, _INT, 0, limits.MAX_LAYERS)
    check("stage2.final_keep_ratio", s2.final_keep_ratio, _NUMBER)
    if not isinstance(s2.early_levels, (tuple, list)):
        fail("stage2.early_levels", f"expected a list of levels, got {type(s2.early_levels).__name__}")
    for lv in s2.early_levels:
        check("stage2.early_levels", lv, _INT)
    check("calibration.alpha", p.calibration.alpha, _NUMBER, optional=True)


def _check_profile(p: Profile, source: str) -> None:
    def fail(where: str, msg: str) -> None:
        raise ProfileError(f"{source}: {where}: {msg}")

    _check_types(p, fail)
    s1, s2 = p.stage1, p.stage2
    ent = s1.entropy
    if tuple(ent.grayscale_weights) != GRAYSCALE_WEIGHTS:
        fail("stage1.entropy.grayscale_weights", f"only {list(GRAYSCALE_WEIGHTS)} is supported")
    if ent.bins != ENTROPY_BINS:
        fail("stage1.entropy.bins", f"only {ENTROPY_BINS} is supported, got {ent.bins}")
    if ent.log_base != ENTROPY_LOG_BASE:
        fail("stage1.entropy.log_base", f"only {ENTROPY_LOG_BASE!r} (nats) is supported, got {_short(ent.log_base)}")
    if ent.statistic != ENTROPY_STATISTIC:
        fail("stage1.entropy.statistic", f"only {ENTROPY_STATISTIC!r} is supported, got {_short(ent.statistic)}")
    if ent.grayscale_rounding not in GRAYSCALE_ROUNDINGS:
        fail(
            "stage1.entropy.grayscale_rounding",
            f"must be one of {', '.join(GRAYSCALE_ROUNDINGS)}, got {_short(ent.grayscale_rounding)}",
        )
    n = len(s1.keep_ratios)
    if n < 2:
        fail("stage1.keep_ratios", f"need at least 2 levels, got {n}")
    if len(s1.thresholds) != n - 1:
        fail(
            "stage1.keep_ratios",
            f"{n} levels need {n - 1} stage1.thresholds, got {len(s1.thresholds)} (level count does not match)",
        )
    for a, b in zip(s1.thresholds, s1.thresholds[1:]):
        if not a > b:
            fail("stage1.thresholds", f"must be strictly descending, got {list(s1.thresholds)}")
    for i, k in enumerate(s1.keep_ratios):
        if not 0.0 < k <= 1.0:
            fail(f"stage1.keep_ratios[{i}]", f"must be in (0, 1], got {k}")
    if not 0.0 < s2.final_keep_ratio <= 1.0:
        fail("stage2.final_keep_ratio", f"must be in (0, 1], got {s2.final_keep_ratio}")
    for lv in s2.early_levels:
        if not 1 <= lv <= n:
            fail("stage2.early_levels", f"level {lv} is outside 1..{n}")
    if len(set(s2.early_levels)) != len(s2.early_levels):
        fail("stage2.early_levels", f"duplicate levels in {list(s2.early_levels)}")
    depth = p.model.fingerprint.num_layers
    for name in ("early_layer", "late_layer"):
        if getattr(s2, name) >= depth:
            fail(f"stage2.{name}", f"{getattr(s2, name)} is beyond model.fingerprint.num_layers ({depth})")
    ip = p.image_processing
    if ip.min_pixels is not None and ip.max_pixels is not None and ip.min_pixels > ip.max_pixels:
        fail("image_processing", f"min_pixels {ip.min_pixels} exceeds max_pixels {ip.max_pixels}")
    if p.calibration.source not in SOURCES:
        fail("calibration.source", f"expected one of {list(SOURCES)}, got {_short(p.calibration.source)}")
    a = p.calibration.alpha
    if a is not None and not 0.0 <= a <= 1.0:
        fail("calibration.alpha", f"must be in [0, 1], got {a}")
    ada = p.methods.adavtp
    if ada is not None:
        if not ada.erank_avg >= 1.0:
            fail("methods.adavtp.erank_avg", f"an effective rank is at least 1, got {ada.erank_avg}")
        if not 0.0 < ada.tau_max <= 2.0:
            fail("methods.adavtp.tau_max", f"a cosine distance cap must be in (0, 2], got {ada.tau_max}")
        if ada.tau_max_rule not in ADAVTP_TAU_MAX_RULES:
            fail("methods.adavtp.tau_max_rule", f"must be one of {list(ADAVTP_TAU_MAX_RULES)}, got {ada.tau_max_rule!r}")
    if p.schema_version != SCHEMA_VERSION:
        fail("schema_version", f"this toolkit writes version {SCHEMA_VERSION}, got {p.schema_version}")


def parse_profile_text(text: str, source: str) -> Profile:
    """Parse and validate profile YAML: plain data only, within the limits of `erase.limits`."""
    if not isinstance(text, str):
        raise EraseTypeError(f"profile text: expected str, got {type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_profile_bytes():
        raise ProfileError(
            f"{source}: profile is larger than {limits.max_profile_bytes():,} bytes; "
            f"raise the limit with {limits.ENV_PROFILE_BYTES}=BYTES if it is trusted"
        )
    return profile_from_dict(limits.load_plain_yaml(text, source), source)
