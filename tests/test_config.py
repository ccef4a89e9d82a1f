"""Configs: every value that cannot run is a ConfigError when the config is read, not a traceback later."""

import pytest
import torch

from sdl.config import ConfigError, config_from_dict, load_config


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"data": {"n": 1}}, "data.n must be at least 2, got 1"),
        ({"data": {"noise": -1}}, "data.noise must be a finite standard deviation ≥ 0, got -1"),
        ({"data": {"seed": -1}}, "data.seed must be non-negative, got -1"),
        ({"model": {"width": 1}}, "model.width: 1 is less than the data's dimension 2, which model.lift: pad needs"),
        ({"model": {"t_final": float("inf")}}, "model.t_final: inf must be a finite number > 0"),
        ({"model": {"init_scale": float("nan")}}, "model.init_scale: nan must be a finite number ≥ 0"),
        ({"model": {"init_scale": -1.0}}, "model.init_scale: -1.0 must be a finite number ≥ 0"),
        ({"integrator": {"name": "implicit_midpoint", "tol": 0.0}}, "integrator.tol: 0.0 must be a finite number > 0"),
        ({"integrator": {"name": "implicit_midpoint", "max_iter": 0}}, "integrator.max_iter: 0 must be ≥ 1"),
        ({"analysis": {"max_points": 0}}, "analysis.max_points: 0 must be ≥ 1"),
        (
            {"gradient": {"mode": "otd", "recovery": "revolve"}},
            "gradient.recovery: 'revolve' is not valid; valid choices: store, checkpoint, binomial, reverse",
        ),
        (
            {"gradient": {"mode": "otd", "recovery": "binomial", "snapshots": 0}},
            "gradient: snapshots must be a positive int, got 0",
        ),
        (
            {"gradient": {"mode": "otd", "recovery": "binomial", "snapshots": "many"}},
            "gradient.snapshots: 'many' must be int, got str",
        ),
        ({"analysis": {"refine_steps": -1}}, "analysis.refine_steps: -1 must be ≥ 0"),
        (
            {"model": {"constraint": "lipschitz"}},
            "model.constraint: 'lipschitz' is not valid; valid choices: nonexpansive, nonexpansive_step, switching",
        ),
        (
            {"model": {"constraint": "nonexpansive"}},
            "model: constraint='nonexpansive' needs a GradientFlowField, got ResNetField",
        ),
        (
            {"model": {"field": "gradient_flow", "constraint": "nonexpansive"}, "integrator": "midpoint"},
            "this method's contractivity radius is 0",
        ),
        ({"model": {"field": "switching"}}, "model: num_layers must be an even int ≥ 2 (expansive, contractive pairs), got 15"),
        ({"model": {"head": "spline"}}, "model.head: 'spline' is not valid; valid choices: linear, orthogonal, spectral"),
        (
            {"data": {"name": "digits"}, "model": {"width": 64}, "plots": ["transitions"]},
            "plots: transitions draw points of the plane, and digits has 64 features",
        ),
        ({"data": {"name": "digits"}}, "model.width: 2 is less than the data's dimension 64"),
        ({"name": "../escape"}, "name: '../escape' is not a valid run name; use letters, digits and . _ = + , - only"),
        ({"name": "a/b"}, "name: 'a/b' is not a valid run name"),
        ({"name": ""}, "name: '' is not a valid run name"),
        ({"name": ".."}, "name: '..' is not a valid run name"),
        ({"task": {"kind": []}}, "task.kind: [] is not valid; valid choices: "),  # unhashable: found by hypothesis
    ],
)
def test_values_that_cannot_run_are_config_errors(raw, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(raw)
    assert message in str(error.value)


def test_linear_lift_allows_a_narrow_model():
    assert config_from_dict({"model": {"width": 1, "lift": "linear"}}).model.width == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="device: 'cuda' is not available on this machine; valid choices here: auto, cpu"):
        config_from_dict({"device": "cuda"})


def test_duplicate_yaml_keys_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.1\n  iterations: 5\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"c.yaml:4:3: not valid YAML: duplicate key 'lr'$"):
        load_config(path)
    path.write_text("{}")
    with pytest.raises(ConfigError, match=r"--set model=\{width: 3, width: 4\}:1:12: not valid YAML: duplicate key 'width'"):
        load_config(path, ["model={width: 3, width: 4}"])


def test_yaml_errors_are_one_line_with_file_line_and_column(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: [0.1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}:3:1: not valid YAML:") and "\n" not in str(error.value)


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="is a folder; give a YAML file"):
        load_config(tmp_path)


def test_names_from_file_names_and_sweeps_are_made_safe(tmp_path):
    from sdl.config import safe_name

    path = tmp_path / "my config.yaml"
    path.write_text("{}")
    assert load_config(path).name == "my_config"
    assert safe_name("tiny-[1, 2]-a/b") == "tiny-_1,_2_-a_b"
    assert config_from_dict({"name": safe_name("tiny-0.001-None-rk4")}).name == "tiny-0.001-None-rk4"
    # a name that is no folder of its own (or --runs itself, or its parent) becomes "experiment"
    assert [safe_name(text) for text in ("", ".", "..", "...", "/", "a")] == ["experiment"] * 3 + ["...", "_", "a"]


def test_the_file_name_names_a_config_only_when_nothing_else_does(tmp_path):
    path = tmp_path / "my config.yaml"
    path.write_text("name: experiment\n")
    assert load_config(path).name == "experiment"  # given in the file, even if it is the default
    path.write_text("{}")
    assert load_config(path, ["name=other"]).name == "other" and load_config(path).name == "my_config"


def test_a_config_file_that_is_missing_or_not_a_mapping_is_named_in_the_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"^config file '{missing}' does not exist$"):
        load_config(missing)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=f"^{listing}: expected a mapping of keys at the top level, got list$"):
        load_config(listing)


def test_a_method_name_alone_keeps_the_integrators_other_settings():
    from sdl.config import set_key

    raw = {"integrator": {"name": "gauss_legendre4", "solver": "newton", "tol": 1e-10}}
    assert set_key(raw, "integrator", "gauss_legendre6") == {
        "integrator": {"name": "gauss_legendre6", "solver": "newton", "tol": 1e-10}
    }
    assert set_key({}, "train.lr", 0.1) == {"train": {"lr": 0.1}}
    with pytest.raises(ConfigError, match=r"^train.lr: 'train' is not a section$"):
        set_key({"train": 1}, "train.lr", 0.1)


def test_type_names_in_messages_never_say_typing():
    import typing

    from sdl.config import _type_name

    assert _type_name(int) == "int" and _type_name(tuple[int, ...] | None) == "tuple[int, ...] | None"
    assert _type_name(typing.Any | None) == "Any | None"  # str() would say "typing.Any | None"


def test_every_device_of_this_machine_is_a_valid_config_device(device):
    config = config_from_dict({"device": device})
    assert config.torch_device().type == device
    assert config_from_dict({"device": "auto"}).torch_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


# Whole messages: a check that only looks for a fragment passes when the key or the choices in the
# message are wrong (mutation testing found such checks; TESTING.md).
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"integrator": {"name": "nope"}}, "integrator.name: 'nope' is not valid; valid choices: euler, midpoint, heun"),
        ({"integrator": {"name": "gauss_legendre4", "tol": -1}}, "integrator.tol: -1.0 must be a finite number > 0"),
        ({"integrator": {"name": "gauss_legendre4", "max_iter": 0}}, "integrator.max_iter: 0 must be ≥ 1"),
        (
            {"integrator": {"name": "gauss_legendre4", "solver": "x"}},
            "integrator: unknown stage solver 'x'; valid solvers: fixed_point, newton, jacobi_newton",
        ),
        ({"integrator": {"name": "rk4", "tol": "a"}}, "integrator.tol: 'a' must be float or NoneType"),
        ({"gradient": {"mode": "x"}}, "gradient.mode: 'x' is not valid; valid choices: dto, otd"),
        ({"analysis": {"points": "x"}}, "analysis.points: 'x' is not valid; valid choices: train, val"),
        ({"plots": ["x"]}, "plots: 'x' is not valid; valid choices: history, decision_boundary, transitions"),
        ({"plots": ["history", 3]}, "plots: ['history', 3] must be tuple or NoneType"),
        ({"dtype": "x"}, "dtype: 'x' is not valid; valid choices: float32, float64"),
        ({"device": "x"}, "device: 'x' is not valid; valid choices: auto, cpu, cuda"),
        ({"name": "."}, "name: '.' is not a valid run name; use letters, digits and . _ = + , - only"),
        ({"train": 3}, "train: expected a mapping of keys, got int 3"),
    ],
)
def test_config_errors_are_whole_messages_that_start_with_the_key(raw, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(raw)
    assert str(error.value).startswith(message)


def test_cuda_on_a_machine_without_it_and_a_section_of_another_task_are_refused():
    import dataclasses

    if not torch.cuda.is_available():
        with pytest.raises(
            ConfigError, match=r"^device: 'cuda' is not available on this machine; valid choices here: auto, cpu$"
        ):
            config_from_dict({"device": "cuda"})
    boltzmann = config_from_dict({"task": {"kind": "boltzmann"}, "data": {"energy": "double_well"}, "train": {"batch_size": 16}})
    message = r"^data: a ClassificationData does not describe the boltzmann task's data; expected BoltzmannData$"
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(config_from_dict({}), task=boltzmann.task)


def test_points_train_and_the_adjoint_a_gradient_section_asks_for():
    assert config_from_dict({"analysis": {"points": "train"}}).analysis.points == "train"
    assert config_from_dict({}).gradient.adjoint() == "dto"
    adjoint = config_from_dict({"gradient": {"mode": "otd", "recovery": "checkpoint", "checkpoint_every": 3}}).gradient.adjoint()
    assert (adjoint.recovery, adjoint.checkpoint_every) == ("checkpoint", 3)
    assert config_from_dict({"plots": "history"}).plots == ("history",)  # one plot needs no list


def test_the_converter_names_the_item_of_a_list_that_is_wrong():
    from sdl.config import _convert

    assert _convert("k", [1, 2], tuple[int, ...]) == (1, 2) and _convert("k", 3, None | int) == 3
    with pytest.raises(ConfigError, match=r"^k: 3 must be a list of int$"):
        _convert("k", 3, tuple[int, ...])
    with pytest.raises(ConfigError, match=r"^k\[1\]: 'a' must be int, got str$"):
        _convert("k", [1, "a"], tuple[int, ...])


def test_yaml_errors_name_the_source_line_and_column():
    from sdl.config import parse_yaml

    with pytest.raises(ConfigError, match=r"^x.yaml:1:5: not valid YAML: while parsing a flow node expected the node content"):
        parse_yaml("a: [", "x.yaml")
    with pytest.raises(ConfigError, match=r"^'x\\n.yaml':2:1: not valid YAML: duplicate key 'a'$"):
        parse_yaml("a: 1\na: 2", "x\n.yaml")  # a source with a newline is quoted: the message stays one line
    unreadable = (
        's: not valid YAML: unacceptable character #x0000: special characters are not allowed in "<unicode string>", position 3'
    )
    with pytest.raises(ConfigError) as error:
        parse_yaml("a: \x00", "s")  # an error of the reader, which has no line and column
    assert str(error.value) == unreadable
    merged = parse_yaml("base: &b {x: 1}\nmore: &m {y: 2}\nitem:\n  <<: *b\n  <<: *m\n", "s")
    assert merged["item"] == {"x": 1, "y": 2}  # merge keys are not duplicates


def test_overrides_split_at_the_first_equals_sign_and_need_a_key():
    from sdl.config import apply_overrides

    assert apply_overrides({}, ["name=a=b"])["name"] == "a=b"
    with pytest.raises(ConfigError, match=r"^--set '=1': expected KEY=VALUE, e.g. train.lr=0.01$"):
        apply_overrides({}, ["=1"])


def test_a_config_file_that_is_not_text_is_named(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=rf"^{path}: not a text file \(invalid start byte at byte 0\)$"):
        load_config(path)


def test_the_arguments_of_every_data_generator_are_checked_with_whole_messages():
    import numpy as np

    from sdl._validation import check_at_least, check_choice, check_finite, check_sampling

    for seed, noise, dtype in [(0, None, torch.float64), (np.int64(3), 0, torch.float32), (1, np.float32(0.5), torch.float64)]:
        check_sampling(seed, noise, dtype)
    bad = [
        ((True, None, torch.float64), TypeError, "seed must be an int, got True of type bool"),
        ((1.0, None, torch.float64), TypeError, "seed must be an int, got 1.0 of type float"),
        ((-1, None, torch.float64), ValueError, "seed must be non-negative, got -1"),
        ((0, True, torch.float64), TypeError, "noise must be a real number or None, got True"),
        ((0, "a", torch.float64), TypeError, "noise must be a real number or None, got 'a'"),
        ((0, float("nan"), torch.float64), ValueError, "noise must be a finite standard deviation ≥ 0, got nan"),
        ((0, -0.1, torch.float64), ValueError, "noise must be a finite standard deviation ≥ 0, got -0.1"),
        ((0, None, torch.int64), ValueError, "dtype must be a floating torch.dtype such as torch.float64, got torch.int64"),
        ((0, None, "float64"), ValueError, "dtype must be a floating torch.dtype such as torch.float64, got 'float64'"),
    ]
    for args, kind, message in bad:
        with pytest.raises(kind) as error:
            check_sampling(*args)
        assert type(error.value) is kind and str(error.value) == message
    check_finite("k", 0.0, "≥ 0")
    check_at_least("k", 1, 1)
    check_choice("k", "a", ["a"])
    for call, message in [
        (lambda: check_finite("k", float("inf"), "> 0"), "k: inf must be a finite number > 0"),
        (lambda: check_finite("k", 0.0, "> 0"), "k: 0.0 must be a finite number > 0"),
        (lambda: check_finite("k", -1e-9, "≥ 0"), "k: -1e-09 must be a finite number ≥ 0"),
        (lambda: check_at_least("k", 0, 1), "k: 0 must be ≥ 1"),
        (lambda: check_choice("k", [1], {"a"}), "k: [1] is not valid; valid choices: a"),
        (lambda: check_choice("k", "b", ["a", "c"]), "k: 'b' is not valid; valid choices: a, c"),
    ]:
        with pytest.raises(ConfigError) as error:
            call()
        assert str(error.value) == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"nope": 1},
            "nope: unknown key; valid keys: name, task, data, model, integrator, gradient, train, analysis, plots, dtype, device",
        ),
        (
            {"train": {"nope": 1}},
            "train.nope: unknown key; valid keys of train: optimizer, lr, iterations, batch_size, loss, margin, smoothness, "
            "smoothness_form, weight_decay, schedule, seed, log_every",
        ),
        ({"task": 3}, "task: expected a mapping of keys or a task name, got int 3"),
        ({"task": {"kind": "classification", "nope": 1}}, "task.nope: unknown key; valid keys of task: kind"),
        ([1], "config: expected a mapping of keys at the top level, got list"),
    ],
)
def test_unknown_keys_and_sections_that_are_no_mapping_are_whole_messages(raw, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(raw)
    assert str(error.value) == message


def test_an_empty_config_is_the_default_one_and_a_sections_own_error_is_prefixed_with_its_key():
    import dataclasses

    from sdl.config import _build

    assert config_from_dict(None) == config_from_dict({})

    @dataclasses.dataclass
    class Section:
        x: int = 0

        def __post_init__(self):
            if self.x < 0:
                raise ValueError("x must be ≥ 0")

    assert _build(Section, {"x": 2}, "sec") == Section(2)
    for prefix, where in (("sec", "sec"), ("", "config")):
        with pytest.raises(ConfigError, match=rf"^{where}: x must be ≥ 0$"):
            _build(Section, {"x": -1}, prefix)
        with pytest.raises(ConfigError, match=rf"^{where}: expected a mapping of keys, got int 3$"):
            _build(Section, 3, prefix)
