"""Generated configs (hypothesis): every raw config, YAML text and ``--set`` override either loads or
raises ``ConfigError`` with a one-line message; never another exception (a traceback at the CLI)."""

import dataclasses

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sdl.adjoint import RECOVERIES
from sdl.config import (
    DEVICES,
    DTYPES,
    FIELDS,
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    parse_yaml,
)
from sdl.data import dataset_names, density_names, system_names
from sdl.integrators import names
from sdl.models import activation_names
from sdl.tasks import TASKS
from sdl.training import LOSSES, OPTIMIZERS, SCHEDULES

# Valid words of every kind, so that generated configs reach the checks behind the first one.
WORDS = sorted(
    {
        *names(),
        *FIELDS,
        *RECOVERIES,
        "dto",
        "otd",
        *DTYPES,
        *DEVICES,
        *TASKS,
        *OPTIMIZERS,
        *LOSSES,
        *SCHEDULES,
        *dataset_names(),
        *density_names(),
        *system_names(),
        *activation_names(),
        "linear",
        "pad",
        "newton",
        "jacobi_newton",
        "fixed_point",
        "torchdiffeq",
        "trajectory",
        "derivative",
        "hnn",
    }
)
SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
SECTION_KEYS = sorted(
    {
        f.name
        for task in TASKS.values()
        for schema in (task, task.data_config, task.model_config)
        for f in dataclasses.fields(schema)
    }
    | {
        f.name
        for section in ("integrator", "gradient", "train", "analysis")
        for f in dataclasses.fields(type(getattr(Config(), section)))
    }
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(WORDS),
    st.text(max_size=6),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(SECTION_KEYS), inner, max_size=3),
    max_leaves=6,
)
SECTION = st.one_of(VALUES, st.dictionaries(st.sampled_from([*SECTION_KEYS, "bogus"]), VALUES, max_size=4))
RAW = st.dictionaries(st.sampled_from([*sorted(SECTIONS), "bogus"]), SECTION, max_size=5)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def _loads_or_says_why(action):
    try:
        return action()
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
        return None


@SETTINGS
@given(RAW)
def test_every_raw_config_loads_or_is_a_one_line_config_error(raw):
    config = _loads_or_says_why(lambda: config_from_dict(raw))
    if config is not None:  # a valid config round-trips through its own dict
        assert config_from_dict(config.to_dict()) == config


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from([f"{s}.{k}" for s in SECTIONS for k in SECTION_KEYS[:12]] + list(SECTIONS) + ["", "a..b"]),
            st.one_of(st.sampled_from(WORDS), st.text(max_size=8), st.integers(-2, 9).map(str)),
        ),
        max_size=4,
    )
)
@example([("model.activation", "'\n")])  # found by this test: the message quoted the override's newline
def test_every_override_applies_or_is_a_one_line_config_error(pairs):
    overrides = [f"{key}={value}" for key, value in pairs]
    _loads_or_says_why(lambda: config_from_dict(apply_overrides({}, overrides)))


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("abc:{}[]-,'\"!&*#| \n\t0.1")), max_size=30))
def test_every_yaml_text_parses_or_is_a_one_line_config_error(text):
    _loads_or_says_why(lambda: parse_yaml(text, "c.yaml"))


@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_refused_for_every_int_key(value):
    """The generated inputs above stop at the first bad key; this walks every int key of every section."""
    checked = []
    for section in ("integrator", "gradient", "train", "analysis"):
        schema = type(getattr(Config(), section))
        for f in dataclasses.fields(schema):
            if f.type in ("int", "int | None"):
                with pytest.raises(ConfigError, match=f"{section}.{f.name}: {value} must be int"):
                    config_from_dict({section: {f.name: value}})
                checked.append(f"{section}.{f.name}")
    assert {"integrator.max_iter", "gradient.checkpoint_every", "train.iterations", "analysis.max_points"} <= set(checked)
