"""Generated ``odeint`` inputs (hypothesis): states of any shape and dtype, pair states, grids, methods,
gradients and option values. Every input either integrates (right shape, dtype and a finite result)
or raises one of the documented errors, ValueError, TypeError or (an implicit stage solve that does not
converge) ``sdl.integrators.ConvergenceError``, with a one-line message."""

import math

import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import sdl
from sdl.integrators import ConvergenceError, names


def mostly(valid, invalid):
    """``valid`` nine times in ten, so that most inputs get past the first check to the next ones."""
    return st.integers(0, 9).flatmap(lambda i: invalid if i == 9 else valid)


FLOATING = [torch.float64, torch.float32]
DTYPES = mostly(st.sampled_from(FLOATING), st.sampled_from([torch.float16, torch.bfloat16, torch.int64, torch.bool]))
SHAPES = st.lists(st.integers(0, 3), max_size=3).map(tuple)
FLOATS = st.floats(-3.0, 3.0) | st.sampled_from([math.nan, math.inf, 0.0])
GRIDS = mostly(
    st.integers(2, 5).flatmap(
        lambda n: st.sampled_from([torch.linspace(0.0, 1.0, n).tolist(), torch.linspace(1.0, -0.5, n).tolist()])
    ),
    st.one_of(st.lists(FLOATS, max_size=5), st.just([[0.0, 1.0]])),
)
OPTIONAL = {  # None: not passed
    "recovery": mostly(st.sampled_from([None, "store", "checkpoint", "reverse"]), st.sampled_from(["forward", 3])),
    "checkpoint_every": mostly(st.sampled_from([None, 1, 2]), st.sampled_from([0, -1, 2.5, True])),
    "adjoint_method": mostly(st.sampled_from([None, None, "rk4", "euler"]), st.sampled_from(["verlet", "torchdiffeq", "nope"])),
    "output": mostly(st.sampled_from(["all", "last"]), st.sampled_from(["first", None])),
}


class Spring(sdl.Separable, torch.nn.Module):
    """dq/dt = w p, dp/dt = -w q (any shapes of q and p, one learnable w)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))

    def velocity(self, t, p):
        return self.w.to(p.dtype) * p

    def force(self, t, q):
        return -self.w.to(q.dtype) * q


class Decay(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5, dtype=torch.float64))

    def forward(self, t, y):
        return -self.w.to(y.dtype) * y


@st.composite
def problems(draw):
    pair = draw(mostly(st.sampled_from(["single", "pair"]), st.just("triple")))
    dtype = draw(DTYPES)
    parts = {"single": 1, "pair": 2, "triple": 3}[pair]
    shape = draw(SHAPES)  # q and p of one shape, as the spring needs (other shapes: func's output is refused)
    states = [
        torch.ones(draw(mostly(st.just(shape), SHAPES)), dtype=dtype if i == 0 else draw(mostly(st.just(dtype), DTYPES)))
        for i in range(parts)
    ]
    y0 = states[0] if pair == "single" else tuple(states)
    gradient = draw(mostly(st.sampled_from(["dto", "otd"]), st.just("autograd")))
    options = {k: v for k, s in OPTIONAL.items() if (v := draw(s)) is not None and (gradient != "dto" or k == "output")}
    return {
        "func": Spring() if pair != "single" else Decay(),
        "y0": y0,
        "t": draw(GRIDS),
        "method": draw(mostly(st.sampled_from(names()), st.just("rk5"))),
        "gradient": gradient,
        **options,
    }


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(problems())
@example(
    {
        "func": Decay(),
        "y0": torch.tensor(1.0, dtype=torch.float64),
        "t": [1.0, -0.5],
        "method": "backward_euler",
        "gradient": "dto",
    }
)  # a fixed-point iteration contracting by 0.75: no convergence in 100 iterations
def test_every_generated_input_integrates_or_raises_a_documented_error(problem):
    kwargs = dict(problem)
    func, y0, t = kwargs.pop("func"), kwargs.pop("y0"), kwargs.pop("t")
    try:
        out = sdl.odeint(func, y0, torch.tensor(t), **kwargs)
    except (ValueError, TypeError, ConvergenceError) as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
        event(f"{type(error).__name__}: {message[:40]}")
        return
    event("integrated")
    states = y0 if isinstance(y0, tuple) else (y0,)
    outs = out if isinstance(out, tuple) else (out,)
    lead = () if kwargs.get("output") == "last" else (len(t),)
    for state, result in zip(states, outs, strict=True):
        assert result.shape == lead + state.shape and result.dtype == state.dtype
        assert torch.isfinite(result).all()
