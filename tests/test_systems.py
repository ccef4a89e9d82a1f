import math

import numpy as np
import pytest
import scipy.integrate
import torch

import sdl.data.systems as systems_module
from sdl.data import RECIPES, SYSTEMS, System, Trajectories, get_system, make_trajectories, system_names

NAMES = system_names()
PAIRS = [(name, recipe) for name in NAMES for recipe in get_system(name).recipes]

# (train shape, test shape, time step) of each recipe, as the papers' code has them.
EXPECTED = {
    ("mass_spring", "hnn"): ((25, 30, 2), (25, 30, 2), 3 / 29),
    ("pendulum", "hnn"): ((25, 45, 2), (25, 45, 2), 3 / 44),
    ("pendulum_sympnets", "sympnets"): ((1, 41, 2), (1, 101, 2), 0.1),
    ("two_body", "hnn"): ((800, 50, 8), (200, 50, 8), 20 / 49),
    ("double_pendulum", "sympnets"): ((1, 201, 4), (1, 101, 4), 0.75),
}
DEFAULT_NOISE = {("mass_spring", "hnn"): 0.1, ("pendulum", "hnn"): 0.1}


@pytest.fixture(scope="module")
def generated():
    """(system, recipe) -> (train, test) at seed 0, each generated once for the whole module."""
    cache: dict[tuple[str, str], tuple[Trajectories, Trajectories]] = {}

    def get(name: str, recipe: str) -> tuple[Trajectories, Trajectories]:
        if (name, recipe) not in cache:
            cache[(name, recipe)] = make_trajectories(name, recipe)
        return cache[(name, recipe)]

    return get


def _random_state(system: System, shape: tuple[int, ...], generator: torch.Generator):
    q = torch.randn(*shape, system.dim, generator=generator, dtype=torch.float64)
    p = torch.randn(*shape, system.dim, generator=generator, dtype=torch.float64)
    if system.name == "two_body":  # keep the bodies apart: body 2 three units to the right
        q = q / 4 + torch.tensor([0.0, 0.0, 3.0, 0.0], dtype=torch.float64)
    return q, p


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max())


def test_registry_names_and_recipes():
    assert NAMES == ["mass_spring", "pendulum", "pendulum_sympnets", "two_body", "double_pendulum"]
    assert RECIPES == ("hnn", "sympnets") and list(SYSTEMS) == NAMES
    assert {name: get_system(name).recipes for name in NAMES} == {
        "mass_spring": ("hnn",),
        "pendulum": ("hnn",),
        "pendulum_sympnets": ("sympnets",),
        "two_body": ("hnn",),
        "double_pendulum": ("sympnets",),
    }
    assert [get_system(name).dim for name in NAMES] == [1, 1, 1, 4, 2]
    assert all(isinstance(get_system(name), System) and get_system(name).name == name for name in NAMES)
    with pytest.raises(TypeError):
        System("custom", 1)  # abstract


@pytest.mark.parametrize("name", NAMES)
def test_field_is_the_symplectic_gradient_of_the_hamiltonian(name):
    system = get_system(name)
    q, p = _random_state(system, (5, 3), torch.Generator().manual_seed(1))
    q.requires_grad_(True)
    p.requires_grad_(True)
    energy = system.hamiltonian(q, p)
    assert energy.shape == (5, 3) and energy.dtype == torch.float64
    dh_dq, dh_dp = torch.autograd.grad(energy.sum(), (q, p))
    dq, dp = system.field(torch.tensor(0.0), (q.detach(), p.detach()))
    assert dq.shape == dp.shape == (5, 3, system.dim)
    assert _relative_error(dq, dh_dp) < 1e-12 and _relative_error(dp, -dh_dq) < 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_numpy_right_hand_side_equals_field_and_dtypes_follow_q(name):
    system = get_system(name)
    q, p = _random_state(system, (4,), torch.Generator().manual_seed(2))
    dq, dp = system.field(None, (q, p))
    dq_numpy, dp_numpy = system._equations(q.numpy(), p.numpy(), np)  # what solve integrates
    np.testing.assert_allclose(dq_numpy, dq.numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dp_numpy, dp.numpy(), rtol=1e-14, atol=1e-15)
    q32, p32 = q.float(), p.float()
    assert system.hamiltonian(q32, p32).dtype == torch.float32
    assert all(part.dtype == torch.float32 for part in system.field(None, (q32, p32)))


@pytest.mark.parametrize("name, recipe", PAIRS)
def test_solved_trajectories_conserve_the_hamiltonian(name, recipe, generated):
    system = get_system(systems_module._recipe(name, recipe).system)
    for part in generated(name, recipe):
        q, p = part.clean.split(system.dim, dim=-1)
        energy = system.hamiltonian(q, p)
        drift = (energy - energy[:, :1]).abs() / energy[:, :1].abs()
        assert drift.max().item() < 1e-9


def test_mass_spring_matches_its_exact_solution(generated):
    def exact(x0, t):
        q0, p0 = x0[:, None, 0], x0[:, None, 1]
        c, s = np.cos(2 * t), np.sin(2 * t)
        return np.stack([q0 * c + p0 * s, p0 * c - q0 * s], axis=-1)

    system = get_system("mass_spring")
    x0 = system.initial_states(6, np.random.default_rng(5))
    t = np.linspace(0.0, 10.0, 101)
    np.testing.assert_allclose(system.solve(x0, t), exact(x0, t), rtol=0, atol=1e-10)
    train, _ = generated("mass_spring", "hnn")
    clean = train.clean.numpy()
    np.testing.assert_allclose(clean, exact(clean[:, 0], train.t.numpy()), rtol=0, atol=1e-10)


def test_a_stacked_solve_holds_each_trajectory_to_the_tolerance():
    """An eccentric orbit solved beside 255 easy ones is as accurate as when solved alone (the
    step control's mean over the stack would otherwise let its error grow by up to √256 = 16)."""

    def orbit(radius, speed_scale):  # bodies at ±(r, r)/√2, speed_scale times the circular velocity
        position = np.full(2, radius / math.sqrt(2))
        velocity = np.array([-position[1], position[0]]) / (2 * radius**1.5) * speed_scale
        return np.concatenate([position, -position, velocity, -velocity])

    system = get_system("two_body")
    t = np.linspace(0.0, 20.0, 50)
    hard, easy = orbit(1.0, 0.6), orbit(8.0, 1.0)
    reference = system.solve(hard[None], t, rtol=2.3e-14, atol=1e-16)[0]
    alone = system.solve(hard[None], t)[0]
    stacked = system.solve(np.stack([hard] + [easy] * 255), t)
    error_alone = np.abs(alone - reference).max()
    assert 1e-11 < error_alone < 1e-8  # the reference resolves the solver's error
    assert np.abs(stacked[0] - reference).max() < 1.5 * error_alone


@pytest.mark.parametrize("name, recipe", PAIRS)
def test_shapes_grids_and_splits(name, recipe, generated):
    train_shape, test_shape, step = EXPECTED[(name, recipe)]
    train, test = generated(name, recipe)
    for part, shape in ((train, train_shape), (test, test_shape)):
        assert isinstance(part, Trajectories)
        assert part.states.shape == part.clean.shape == part.derivatives.shape == shape
        assert part.t.shape == (shape[1],) and part.t[0].item() == 0.0
        assert part.step == pytest.approx(step, rel=1e-12)
        assert torch.allclose(part.t.diff(), torch.full((shape[1] - 1,), step, dtype=torch.float64), atol=1e-12)
        assert all(x.dtype == torch.float64 for x in (part.t, part.states, part.clean, part.derivatives))
    if recipe == "sympnets":  # the test trajectory continues from the last training state
        assert torch.equal(test.clean[:, 0], train.clean[:, -1])


@pytest.mark.parametrize("name, recipe", PAIRS)
def test_derivatives_are_the_field_and_noise_has_the_recipes_level(name, recipe, generated):
    system = get_system(systems_module._recipe(name, recipe).system)
    for part in generated(name, recipe):
        q, p = part.clean.split(system.dim, dim=-1)
        field = torch.cat(system.field(None, (q, p)), dim=-1)
        torch.testing.assert_close(part.derivatives, field, rtol=1e-15, atol=1e-15)
        noise = part.states - part.clean
        if (name, recipe) in DEFAULT_NOISE:
            assert noise.std().item() == pytest.approx(DEFAULT_NOISE[(name, recipe)], rel=0.05)
            assert noise.mean().abs().item() < 0.01
            assert (noise != 0).all()  # on every coordinate of q and p
        else:
            assert torch.equal(part.states, part.clean)


def test_noise_scales_one_fixed_draw():
    _, base = make_trajectories("pendulum", seed=4, noise=0.0)
    _, small = make_trajectories("pendulum", seed=4, noise=0.1)
    _, large = make_trajectories("pendulum", seed=4, noise=0.3)
    assert torch.equal(base.clean, small.clean) and torch.equal(base.clean, large.clean)
    assert torch.equal(base.states, base.clean)
    torch.testing.assert_close(large.states - large.clean, 3 * (small.states - small.clean), rtol=1e-12, atol=1e-14)
    _, test = make_trajectories("pendulum_sympnets", noise=0.05)  # a recipe without noise of its own
    assert (test.states - test.clean).std().item() == pytest.approx(0.05, rel=0.15)


def test_initial_states_of_the_hnn_recipes(generated):
    for name, low, high in (("mass_spring", 0.1, 1.0), ("pendulum", 1.3, 2.3)):
        train, test = generated(name, "hnn")
        # Drawn first from default_rng(0), the first half train, the second half test.
        x0 = get_system(name).initial_states(50, np.random.default_rng(0))
        np.testing.assert_array_equal(torch.cat([train.clean[:, 0], test.clean[:, 0]]).numpy(), x0)
        radii = np.linalg.norm(x0, axis=1)
        assert radii.min() >= low and radii.max() <= high and radii.max() - radii.min() > 0.8 * (high - low)

    train, test = generated("two_body", "hnn")
    x0 = get_system("two_body").initial_states(1000, np.random.default_rng(0))
    np.testing.assert_array_equal(test.clean[:, 0].numpy(), x0[:200])  # the first 200 orbits test
    np.testing.assert_array_equal(train.clean[:, 0].numpy(), x0[200:])
    position, velocity = x0[:, 0:2], x0[:, 4:6]
    assert position.min() >= 0.5 and position.max() <= 1.5
    np.testing.assert_array_equal(x0[:, 2:4], -position)
    np.testing.assert_array_equal(x0[:, 6:8], -velocity)
    assert np.abs((position * velocity).sum(1)).max() < 1e-15  # perpendicular: a circular orbit's direction
    radius = np.linalg.norm(position, axis=1)
    scale = np.linalg.norm(velocity, axis=1) * 2 * np.sqrt(radius)  # 1 + 0.05 N(0, 1)
    assert scale.mean() == pytest.approx(1.0, abs=0.01) and scale.std() == pytest.approx(0.05, rel=0.1)
    assert (position[:, 0] * velocity[:, 1] - position[:, 1] * velocity[:, 0] > 0).all()  # counter-clockwise


def test_initial_states_of_the_sympnets_recipes(generated):
    for name, x0 in (("pendulum_sympnets", [1.0, 0.0]), ("double_pendulum", [3 * math.pi / 7, 3 * math.pi / 8, 0.0, 0.0])):
        train, _ = generated(name, "sympnets")
        np.testing.assert_array_equal(train.clean[0, 0].numpy(), x0)
        drawn = get_system(name).initial_states(3, np.random.default_rng(0), "sympnets")
        np.testing.assert_array_equal(drawn, [x0] * 3)


@pytest.mark.parametrize("name", ["mass_spring", "pendulum", "two_body"])
def test_same_seed_same_data_other_seed_other_data(name):
    first, second, other = (make_trajectories(name, seed=seed) for seed in (7, 7, 8))
    for a, b, c in zip(first, second, other, strict=True):
        assert torch.equal(a.states, b.states) and torch.equal(a.clean, b.clean) and torch.equal(a.t, b.t)
        assert not torch.equal(a.clean, c.clean) and not torch.equal(a.states, c.states)


def test_dtype_and_device(generated, device):
    train, test = make_trajectories("mass_spring", dtype=torch.float32, device=device)
    reference, _ = generated("mass_spring", "hnn")
    for x in (train.t, train.states, train.clean, train.derivatives, test.states):
        assert x.dtype == torch.float32 and x.device.type == device
    assert torch.equal(train.states.cpu(), reference.states.float())


def test_cache_writes_one_file_and_the_next_call_loads_it(tmp_path, monkeypatch):
    folder = tmp_path / "cache" / "nested"
    train, test = make_trajectories("mass_spring", seed=3, cache_dir=folder)
    files = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file())
    assert [str(path) for path in files] == ["cache/nested/mass_spring-hnn-seed3-noise0.1.npz"]

    def no_solving(*args, **kwargs):
        raise AssertionError("the cached call must not solve")

    monkeypatch.setattr(scipy.integrate, "solve_ivp", no_solving)
    cached_train, cached_test = make_trajectories("mass_spring", seed=3, cache_dir=folder)
    for fresh, cached in ((train, cached_train), (test, cached_test)):
        for name in ("t", "states", "clean", "derivatives"):
            assert torch.equal(getattr(fresh, name), getattr(cached, name))
    single, _ = make_trajectories("mass_spring", seed=3, cache_dir=folder, dtype=torch.float32)
    assert single.states.dtype == torch.float32
    with pytest.raises(AssertionError, match="must not solve"):  # another seed or noise is another file
        make_trajectories("mass_spring", seed=4, cache_dir=folder)
    with pytest.raises(AssertionError, match="must not solve"):
        make_trajectories("mass_spring", seed=3, noise=0.2, cache_dir=folder)
    monkeypatch.setattr(systems_module, "_DATA_VERSION", systems_module._DATA_VERSION + 1)
    with pytest.raises(AssertionError, match="must not solve"):  # a file of older recipes is not served
        make_trajectories("mass_spring", seed=3, cache_dir=folder)


def test_without_cache_dir_nothing_touches_the_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def no_writing(*args, **kwargs):
        raise AssertionError("nothing may be written without cache_dir")

    monkeypatch.setattr(systems_module.tempfile, "mkstemp", no_writing)
    monkeypatch.setattr(np, "savez", no_writing)
    make_trajectories("pendulum")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    real_savez = np.savez

    def interrupted(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_trajectories("mass_spring", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary file

    monkeypatch.setattr(np, "savez", real_savez)
    target = tmp_path / "mass_spring-hnn-seed0-noise0.1.npz"
    target.write_bytes(b"PK\x03\x04 a corrupt file from elsewhere")
    train, _ = make_trajectories("mass_spring", cache_dir=tmp_path)  # regenerated, and the file replaced
    with np.load(target, allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["train_states"], train.states.numpy())
    assert [path.name for path in tmp_path.iterdir()] == [target.name]


def test_bad_names_and_arguments_name_the_valid_choices():
    every_name = "mass_spring, pendulum, pendulum_sympnets, two_body, double_pendulum"
    with pytest.raises(ValueError, match=f"system: 'spring' is not valid; valid choices: {every_name}$"):
        get_system("spring")
    with pytest.raises(ValueError, match=r"'spring'.*valid choices: mass_spring"):
        make_trajectories("spring")
    with pytest.raises(ValueError, match=r"recipe of double_pendulum: 'hnn' is not valid; valid choices: sympnets$"):
        make_trajectories("double_pendulum", "hnn")
    with pytest.raises(ValueError, match=r"recipe of mass_spring: 'sympnets' is not valid; valid choices: hnn$"):
        make_trajectories("mass_spring", "sympnets")
    with pytest.raises(ValueError, match=r"valid choices: hnn$"):
        get_system("pendulum").initial_states(3, np.random.default_rng(0), recipe="greydanus")
    with pytest.raises(ValueError, match="seed must be non-negative"):
        make_trajectories("mass_spring", seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        make_trajectories("mass_spring", seed=1.5)
    with pytest.raises(ValueError, match="noise must be a finite standard deviation"):
        make_trajectories("mass_spring", noise=-0.1)
    with pytest.raises(ValueError, match="dtype must be a floating"):
        make_trajectories("mass_spring", dtype=torch.int64)
    system = get_system("two_body")
    with pytest.raises(ValueError, match=r"x0 must be \(N, 8\) for two_body"):
        system.solve(np.zeros((3, 4)), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="strictly increasing"):
        system.solve(system.initial_states(2, np.random.default_rng(0)), np.array([0.0, 1.0, 1.0]))


def test_evaluation_states_follow_the_hnn_notebooks():
    rng = np.random.default_rng(0)
    for name in ("mass_spring", "pendulum"):
        x = get_system(name).evaluation_states(2000, rng)
        assert x.shape == (2000, 2) and (np.abs(x) >= 0.2).all() and (np.abs(x) <= 1.0).all()
        assert (x < 0).mean() == pytest.approx(0.5, abs=0.03)  # both signs, uniformly
    # two bodies are evaluated from the training distribution: mirrored bodies
    orbits = get_system("two_body").evaluation_states(5, np.random.default_rng(1))
    np.testing.assert_array_equal(orbits[:, :2], -orbits[:, 2:4])
