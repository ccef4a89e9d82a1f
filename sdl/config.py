"""Experiment configs: YAML (a safe loader that refuses duplicate keys) validated into typed, frozen dataclasses.

Every key, type and name is checked before anything runs; a mistake raises ``ConfigError``
naming the key, the value and the valid choices. ``--set key=value`` overrides use dotted keys
(``train.lr=0.01``) and YAML syntax for values.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ._validation import ConfigError, check_at_least, check_choice, check_finite
from .adjoint import RECOVERIES, Adjoint
from .integrators import get, names
from .tasks import TASKS, TaskConfig
from .tasks.classification import FIELDS, PLOTS, ClassificationConfig
from .training import TrainConfig

__all__ = [
    "FIELDS",
    "PLOTS",
    "Config",
    "ConfigError",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "parse_yaml",
    "read_yaml",
    "set_key",
]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("auto", "cpu", "cuda")
_NAME_CHARACTERS = "A-Za-z0-9._=+,-"  # one path component: a run name never leaves --runs
NAME_PATTERN = re.compile(f"[{_NAME_CHARACTERS}]+")


@dataclass(frozen=True)
class IntegratorConfig:
    name: str = "rk4"
    solver: str = "fixed_point"
    tol: float | None = None
    max_iter: int | None = None

    def __post_init__(self) -> None:
        check_choice("integrator.name", self.name, names())
        if self.tol is not None:
            check_finite("integrator.tol", self.tol, "> 0")
        if self.max_iter is not None:
            check_at_least("integrator.max_iter", self.max_iter, 1)
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
    snapshots: int = 32

    def __post_init__(self) -> None:
        check_choice("gradient.mode", self.mode, ("dto", "otd"))
        check_choice("gradient.recovery", self.recovery, RECOVERIES)
        try:
            self.adjoint()
        except ValueError as error:
            raise ConfigError(f"gradient: {error}") from None

    def adjoint(self) -> Adjoint | str:
        if self.mode == "dto":
            return "dto"
        return Adjoint(
            method=self.adjoint_method, recovery=self.recovery, checkpoint_every=self.checkpoint_every, snapshots=self.snapshots
        )


@dataclass(frozen=True)
class AnalysisConfig:
    points: str = "val"
    refine_steps: int = 0
    max_points: int = 1000

    def __post_init__(self) -> None:
        check_choice("analysis.points", self.points, ("train", "val"))
        check_at_least("analysis.refine_steps", self.refine_steps, 0)
        check_at_least("analysis.max_points", self.max_points, 1)


@dataclass(frozen=True)
class Config:
    """A whole experiment. ``task`` is a tagged union: its ``kind`` (default "classification") picks
    the schemas of ``data`` and ``model`` (``None``: that schema's defaults) and the valid ``plots``
    (``None``: the task's defaults). ``task`` and ``integrator`` may be given in YAML as bare names."""

    name: str = "experiment"
    task: TaskConfig = field(default_factory=ClassificationConfig)
    data: Any = None
    model: Any = None
    integrator: IntegratorConfig = field(default_factory=IntegratorConfig)
    gradient: GradientConfig = field(default_factory=GradientConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    plots: tuple[str, ...] | None = None
    dtype: str = "float32"
    device: str = "auto"

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name) or self.name in (".", ".."):
            raise ConfigError(
                f"name: {self.name!r} is not a valid run name; use letters, digits and . _ = + , - only "
                f"(one folder name, not '.' or '..')"
            )
        task = type(self.task)
        defaults = {"data": task.data_config, "model": task.model_config}
        for section, schema in defaults.items():
            value = getattr(self, section)
            if value is None:
                object.__setattr__(self, section, schema())
            elif not isinstance(value, schema):
                raise ConfigError(
                    f"{section}: a {type(value).__name__} does not describe the {self.task.kind} task's "
                    f"{section}; expected {schema.__name__}"
                )
        plots = self.task.plots_for(self) if self.plots is None else self.plots
        object.__setattr__(self, "plots", plots)
        for plot in plots:
            check_choice("plots", plot, task.plot_names)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, DEVICES)
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' is not available on this machine; valid choices here: auto, cpu")
        self.task.check(self)

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
    if not source.isprintable():  # an option's text may hold a newline or a control character: one line still
        source = repr(source)
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
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else _build(hint, value, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{key}: {value!r} must be {hint.__name__}, got {type(value).__name__}")
    return value


def _build(cls, data: Any, prefix: str = "", schemas: dict[str, type] | None = None):
    """``cls(**data)`` with every value converted to its field's type (``schemas`` overrides the type
    of some fields), or a ConfigError naming the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping of keys, got {type(data).__name__} {data!r}")
    hints = {**typing.get_type_hints(cls), **(schemas or {})}
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
    if isinstance(raw.get("task"), str):  # "task: density" is short for {kind: density}
        raw["task"] = {"kind": raw["task"]}
    return raw


def _task_section(raw: Any) -> TaskConfig:
    """The ``task:`` section as the config class its ``kind`` names (absent: classification)."""
    raw = {} if raw is None else raw
    if isinstance(raw, TaskConfig):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"task: expected a mapping of keys or a task name, got {type(raw).__name__} {raw!r}")
    kind = raw.get("kind", ClassificationConfig.kind)
    check_choice("task.kind", kind, TASKS)
    return _build(TASKS[kind], raw, "task")


def config_from_dict(raw: Any) -> Config:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of keys at the top level, got {type(raw).__name__}")
    raw = _normalise(raw)
    task = _task_section(raw.get("task"))
    schemas = {"data": type(task).data_config, "model": type(task).model_config}
    return _build(Config, {**raw, "task": task}, schemas=schemas)


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


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
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
