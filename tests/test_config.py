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
