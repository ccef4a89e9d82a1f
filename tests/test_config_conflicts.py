"""Config keys that constrain each other: every pair is refused when the config is read (exit 2,
one line naming the bad value and the valid choices, no run folder), and changing the other key
of the pair makes the same config valid, so the test is about the pair, not one key alone."""

import pytest
import yaml

from sdl import cli
from sdl.config import ConfigError, config_from_dict

CLASSIFICATION = {"data": {"n": 40}, "model": {"steps": 3}, "train": {"iterations": 2}, "plots": []}
DENSITY = {"task": "density", "train": {"iterations": 2, "batch_size": 16}, "plots": []}
DYNAMICS = {"task": "dynamics", "model": {"hidden": 8}, "train": {"iterations": 2}, "plots": []}


def _merged(base: dict, change: dict) -> dict:
    out = dict(base)
    for key, value in change.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merged(base[key], value) if both else value
    return out


REVERSIBLE = "reversible methods: implicit_midpoint, gauss_legendre4, verlet, leapfrog, yoshida4, forest_ruth4"
# (base, the conflicting keys, a change of the other key that resolves it, words of the message)
PAIRS = {
    "splitting method × field on single states": (
        CLASSIFICATION,
        {"integrator": "verlet"},
        {"model": {"field": "hamiltonian"}},
        "'verlet' is a splitting method for (q, p) states and needs model.field: hamiltonian (got 'resnet')",
    ),
    "reverse recovery × method not time-reversible": (
        CLASSIFICATION,
        {"gradient": {"mode": "otd", "recovery": "reverse"}, "integrator": "rk4"},
        {"integrator": "implicit_midpoint"},
        f"recovery='reverse' needs a time-reversible method (Φ_-h = Φ_h⁻¹); 'rk4' is not; {REVERSIBLE}",
    ),
    "jacobi_newton × field without D_dim f": (
        CLASSIFICATION,
        {"integrator": {"name": "backward_euler", "solver": "jacobi_newton"}},
        {"integrator": {"solver": "newton"}},
        (
            "solver='jacobi_newton' needs a field that is sdl.fields.DimwiseDifferentiable "
            "(such as a HollowNet); got ResNetField; use solver='fixed_point' or 'newton'"
        ),
    ),
    "torchdiffeq adjoint × layered field": (
        CLASSIFICATION,
        {"gradient": {"mode": "otd", "adjoint_method": "torchdiffeq"}, "integrator": "euler"},
        {"model": {"layered": False}},
        "Adjoint(method='torchdiffeq') supports shared parameters only",
    ),
    "torchdiffeq adjoint × method torchdiffeq lacks": (
        CLASSIFICATION,
        {"gradient": {"mode": "otd", "adjoint_method": "torchdiffeq"}, "integrator": "rk4", "model": {"layered": False}},
        {"integrator": "rk4_38"},
        "torchdiffeq has no fixed-grid method equal to 'rk4'; use one of: euler, midpoint, rk4_38",
    ),
    "torchdiffeq adjoint × checkpoint recovery": (
        CLASSIFICATION,
        {
            "gradient": {"mode": "otd", "adjoint_method": "torchdiffeq", "recovery": "checkpoint"},
            "integrator": "euler",
            "model": {"layered": False},
        },
        {"gradient": {"recovery": "store"}},
        "recovery='checkpoint' applies to sdl's adjoints",
    ),
    "linear momentum × field on single states": (
        CLASSIFICATION,
        {"model": {"momentum": "linear", "field": "gradient_flow"}},
        {"model": {"field": "hamiltonian"}, "integrator": "verlet"},
        "model.momentum: 'linear' needs a field on (q, p) pairs (model.field: hamiltonian); got 'gradient_flow'",
    ),
    "constraint × field": (
        CLASSIFICATION,
        {"model": {"constraint": "nonexpansive"}},
        {"model": {"field": "gradient_flow"}, "integrator": "euler"},
        "model: constraint='nonexpansive' needs a GradientFlowField, got ResNetField",
    ),
    "constraint × method with no contractivity disc": (
        CLASSIFICATION,
        {"model": {"field": "gradient_flow", "constraint": "nonexpansive"}, "integrator": "midpoint"},
        {"integrator": "euler"},
        "this method's contractivity radius is 0",
    ),
    "padding lift × width below the data's dimension": (
        CLASSIFICATION,
        {"data": {"name": "digits"}},
        {"model": {"lift": "linear"}},
        "model.width: 2 is less than the data's dimension 64, which model.lift: pad needs; raise it or use model.lift: linear",
    ),
    "plane plots × data with more than 2 features": (
        CLASSIFICATION,
        {"data": {"name": "digits"}, "model": {"width": 64}, "plots": ["transitions"]},
        {"plots": ["history"]},
        "plots: transitions draw points of the plane, and digits has 64 features",
    ),
    "weight decay × optimizer without a step size": (
        CLASSIFICATION,
        {"train": {"optimizer": "lbfgs", "weight_decay": 0.1}},
        {"train": {"optimizer": "adam"}},
        "weight_decay=0.1 needs optimizer adam or sgd, got 'lbfgs'",
    ),
    "density × full batch": (
        DENSITY,
        {"train": {"batch_size": None}},
        {"train": {"batch_size": 8}},
        "train.batch_size: None (full batch) has no meaning for a density",
    ),
    "CNF × splitting method": (
        DENSITY,
        {"model": {"flow": "cnf"}, "integrator": "verlet"},
        {"integrator": "rk4"},
        "integrator.name: 'verlet' needs (q, p) states; a CNF needs a Runge–Kutta method",
    ),
    "CNF × reverse recovery of a method not time-reversible": (
        DENSITY,
        {"model": {"flow": "cnf"}, "integrator": "rk4", "gradient": {"mode": "otd", "recovery": "reverse"}},
        {"gradient": {"recovery": "checkpoint"}},
        "do not fit model.flow: cnf: recovery='reverse' needs a time-reversible method",
    ),
    "one-step map × derivative loss": (
        DYNAMICS,
        {"model": {"model": "la_sympnet"}},
        {"task": {"kind": "dynamics", "loss": "trajectory"}},
        (
            "task.loss: 'derivative' needs a field; model.model 'la_sympnet' is a one-step map. Use task.loss: trajectory, "
            "or a field: hnn, separable_hnn, mlp_field"
        ),
    ),
    "HNN × reverse recovery of a method not time-reversible": (
        DYNAMICS,
        {"integrator": "rk4", "gradient": {"mode": "otd", "recovery": "reverse"}},
        {"integrator": "leapfrog"},
        "do not fit model.model: hnn: recovery='reverse' needs a time-reversible method (Φ_-h = Φ_h⁻¹); 'rk4' is not; "
        f"{REVERSIBLE}",
    ),
    "HNN × jacobi_newton": (
        DYNAMICS,
        {"integrator": {"name": "backward_euler", "solver": "jacobi_newton"}},
        {"integrator": {"solver": "fixed_point"}},
        "solver='jacobi_newton' needs a field that is sdl.fields.DimwiseDifferentiable (such as a HollowNet); got HNN",
    ),
    "recipe × system": (
        DYNAMICS,
        {"data": {"system": "mass_spring", "recipe": "sympnets"}},
        {"data": {"system": "pendulum_sympnets"}},
        "data.recipe (of mass_spring): 'sympnets' is not valid; valid choices: hnn",
    ),
}


@pytest.mark.parametrize("pair", PAIRS)
def test_keys_that_constrain_each_other_are_refused_before_anything_runs(tmp_path, capsys, pair):
    base, conflict, resolution, message = PAIRS[pair]
    bad = _merged(base, conflict)
    with pytest.raises(ConfigError) as error:
        config_from_dict(bad)
    assert message in str(error.value)
    config_from_dict(_merged(bad, resolution))  # the other key of the pair decides

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(bad))
    code = cli.main(["train", str(path), "--runs", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_a_horizon_longer_than_the_trajectories_exits_2_and_leaves_no_folder(tmp_path, capsys):
    """task.horizon × data.recipe: the trajectories' length is known once the recipe's data exist, so
    this pair is refused when the run builds its task, before the run folder is kept."""
    path = tmp_path / "c.yaml"
    config = _merged(DYNAMICS, {"task": {"kind": "dynamics", "loss": "trajectory", "horizon": 30}})
    path.write_text(yaml.safe_dump(config))
    code = cli.main(["train", str(path), "--runs", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "task.horizon: 30 data steps do not fit in trajectories of 29 steps; choose 1 … 29" in err, err
    assert not (tmp_path / "runs").exists()
