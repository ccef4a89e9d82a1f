"""Experiment configs: YAML (a safe loader that refuses duplicate keys) validated into typed, frozen dataclasses.

Every key, type and name is checked before anything runs; a mistake raises ``ConfigError``
naming the key, the value and the valid choices. ``--set key=value`` overrides use dotted keys
(``train.lr=0.01``) and YAML syntax for values.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .adjoint import RECOVERIES, Adjoint
from .data import dataset_names
from .data.toy import _check_arguments as _check_data_arguments
from .integrators import get, names
from .models.activations import activation_names
from .models.vector_fields import KINETIC_MODELS
from .models.network import LIFTS, MOMENTA
from .training import TrainConfig

__all__ = ["ConfigError", "Config", "load_config", "config_from_dict", "apply_overrides", "set_key", "parse_yaml", "read_yaml", "FIELDS", "PLOTS"]

FIELDS = {
    "resnet": "σ(A z + b): the residual network field",
    "gradient_flow": "-Aᵀσ(A z + b): a gradient flow, contractive (ν ≤ 0)",
    "hamiltonian": "(q, p) with H = T(p) + V(q): separable Hamiltonian, for symplectic methods",
}
PLOTS = ("history", "decision_boundary", "transitions", "parameters", "layer_stability")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("auto", "cpu", "cuda")
DATA_DIM = 2  # every toy set has points in the plane; build() lifts them from 2 features
_NAME_CHARACTERS = "A-Za-z0-9._=+,-"  # one path component: a run name never leaves --runs
NAME_PATTERN = re.compile(f"[{_NAME_CHARACTERS}]+")


class ConfigError(ValueError):
    """A config that cannot run: the message names the key, the value and the valid choices."""


def _choice(key: str, value: Any, valid) -> None:
    if value not in valid:
        raise ConfigError(f"{key}: {value!r} is not valid; valid choices: {', '.join(map(str, valid))}")


def _at_least(key: str, value, low) -> None:
    if value < low:
        raise ConfigError(f"{key}: {value!r} must be ≥ {low}")


def _finite(key: str, value: float, condition: str) -> None:
    ok = math.isfinite(value) and (value > 0 if condition == "> 0" else value >= 0)
    if not ok:
        raise ConfigError(f"{key}: {value!r} must be a finite number {condition}")


@dataclass(frozen=True)
class DataConfig:
    name: str = "spiral2d"
    n: int = 1000
    noise: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("data.name", self.name, dataset_names())
        try:  # make_dataset's own checks, now rather than when the run starts
            _check_data_arguments(self.name, self.n, self.noise, self.seed, torch.float32)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"data.{error}") from None


@dataclass(frozen=True)
class ModelConfig:
    field: str = "resnet"
    width: int = 2
    activation: str = "tanh"
    layered: bool = True
    steps: int = 15
    t_final: float = 1.5
    lift: str = "pad"
    kinetic: str = "quadratic"
    momentum: str = "zero"
    init_scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("model.field", self.field, FIELDS)
        _choice("model.activation", self.activation, activation_names())
        _choice("model.lift", self.lift, LIFTS)
        _choice("model.kinetic", self.kinetic, KINETIC_MODELS)
        _choice("model.momentum", self.momentum, MOMENTA)
        _at_least("model.width", self.width, 1)
        _at_least("model.steps", self.steps, 1)
        _finite("model.t_final", self.t_final, "> 0")
        _finite("model.init_scale", self.init_scale, "≥ 0")
        if self.lift == "pad" and self.width < DATA_DIM:
            raise ConfigError(
                f"model.width: {self.width!r} is less than the data's dimension {DATA_DIM}, which model.lift: pad "
                f"needs; raise it or use model.lift: linear"
            )


@dataclass(frozen=True)
class IntegratorConfig:
    name: str = "rk4"
    solver: str = "fixed_point"
    tol: float | None = None
    max_iter: int | None = None

    def __post_init__(self) -> None:
        _choice("integrator.name", self.name, names())
        if self.tol is not None:
            _finite("integrator.tol", self.tol, "> 0")
        if self.max_iter is not None:
            _at_least("integrator.max_iter", self.max_iter, 1)
        try:
            get(self.name, solver=self.solver, tol=self.tol, max_iter=self.max_iter)
        except ValueError as error:
            raise ConfigError(f"integrator: {error}") from None


@dataclass(frozen=True)
class GradientConfig:
    mode: str = "dto"
    adjoint_method: str | None = None
    recovery: str = "store"
    checkpoint_every: int = 10

    def __post_init__(self) -> None:
        _choice("gradient.mode", self.mode, ("dto", "otd"))
        _choice("gradient.recovery", self.recovery, RECOVERIES)
        try:
            self.adjoint()
        except ValueError as error:
            raise ConfigError(f"gradient: {error}") from None

    def adjoint(self) -> Adjoint | str:
        if self.mode == "dto":
            return "dto"
        return Adjoint(method=self.adjoint_method, recovery=self.recovery, checkpoint_every=self.checkpoint_every)


@dataclass(frozen=True)
class AnalysisConfig:
    points: str = "val"
    refine_steps: int = 0
    max_points: int = 1000

    def __post_init__(self) -> None:
        _choice("analysis.points", self.points, ("train", "val"))
        _at_least("analysis.refine_steps", self.refine_steps, 0)
        _at_least("analysis.max_points", self.max_points, 1)


@dataclass(frozen=True)
class Config:
    """A whole experiment. ``integrator`` may be given in YAML as a bare name."""

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    integrator: IntegratorConfig = field(default_factory=IntegratorConfig)
    gradient: GradientConfig = field(default_factory=GradientConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    plots: tuple[str, ...] = PLOTS
    dtype: str = "float32"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name) or self.name in (".", ".."):
            raise ConfigError(
                f"name: {self.name!r} is not a valid run name; use letters, digits and . _ = + , - only "
                f"(one folder name, not '.' or '..')"
            )
        for plot in self.plots:
            _choice("plots", plot, PLOTS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("device", self.device, DEVICES)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' is not available on this machine; valid choices here: auto, cpu")
        partitioned = get(self.integrator.name).partitioned
        if partitioned and self.model.field != "hamiltonian":
            raise ConfigError(
                f"integrator.name: {self.integrator.name!r} is a splitting method for (q, p) states and needs "
                f"model.field: hamiltonian (got {self.model.field!r})"
            )

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """YAML ``text`` as Python values; a syntax error or a duplicate key is a one-line ConfigError
    naming ``source`` (a file, or the option the text came from), line and column."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(f"{error.context or ''} {error.problem or ''}".split())
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(error).split())}") from None


def safe_name(text: str) -> str:
    """``text`` made a valid run name: every character outside NAME_PATTERN becomes "_"."""
    name = re.sub(f"[^{_NAME_CHARACTERS}]", "_", text)
    return name if name not in ("", ".", "..") else "experiment"


def read_yaml(path: Path) -> Any:
    """The YAML file ``path`` parsed by ``parse_yaml``; a file that is not text is a ConfigError too."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a text file ({error.reason} at byte {error.start})") from None
    return parse_yaml(text, str(path))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _type_name(hint) -> str:
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _convert(key: str, value: Any, hint) -> Any:
    """``value`` as the type ``hint`` asks for, or a ConfigError naming the key."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(key, value, option)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: {value!r} must be {' or '.join(_type_name(o) for o in options)}")
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{key}: {value!r} must be a list of {_type_name(item)}")
        return tuple(_convert(f"{key}[{i}]", v, item) for i, v in enumerate(items))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{key}: {value!r} must be {hint.__name__}, got {type(value).__name__}")
    return value


def _build(cls, data: Any, prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{where}: unknown key; valid keys{' of ' + prefix if prefix else ''}: {', '.join(known)}")
    values = {k: _convert(f"{prefix}.{k}" if prefix else k, v, hints[k]) for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{prefix or 'config'}: {error}") from None


def _normalise(raw: dict) -> dict:
    raw = dict(raw)
    if isinstance(raw.get("integrator"), str):  # "integrator: verlet" is short for {name: verlet}
        raw["integrator"] = {"name": raw["integrator"]}
    return raw


def config_from_dict(raw: Any) -> Config:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return _build(Config, _normalise(raw))


def set_key(raw: dict, key: str, value: Any) -> dict:
    """Set a dotted ``key`` (``train.lr``) of a raw config dict to ``value``; returns ``raw``."""
    parts = key.split(".")
    if parts == ["integrator"] and isinstance(value, str):  # integrator=verlet
        parts = ["integrator", "name"]
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """``["train.lr=0.01", "integrator=verlet"]`` applied to a raw config dict (values are YAML)."""
    raw = _normalise(raw or {})
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. train.lr=0.01")
        set_key(raw, key, parse_yaml(text, f"--set {override}"))
    return raw


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply ``--set`` overrides, validate."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; give a YAML file (or --resume RUN_DIR for a run folder)")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    raw = read_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    config = config_from_dict(apply_overrides(raw or {}, list(overrides)))
    if config.name == "experiment" and "name" not in (raw or {}):
        config = dataclasses.replace(config, name=safe_name(path.stem))
    return config
