"""Forward + backward of an ODENet, against the same network written as a hand loop.

The Benning/Owren "transitions" network: ResNetField(2, "tanh", num_layers=15), RK4, T = 1.5
(h = 0.1), logistic head, N = 1000 points, float32, one thread; the loss is the sum of the
logits. The hand loop does the same arithmetic (the same fused additions) with no checks at
all, so the ratio shows what ODENet's own machinery costs per call. Also printed: the field evaluations of one forward
pass (RK4 needs exactly 4 per layer, 60 here) and whether ODENet and the hand loop agree.

    PYTHONPATH=. python benchmarks/bench_odenet_forward.py            # full run
    PYTHONPATH=. python benchmarks/bench_odenet_forward.py --quick    # smoke run

(``PYTHONPATH=.`` makes sure the sdl of this checkout is measured, not an installed one.)
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, table

from sdl.models import ODENet, ResNetField

LAYERS, T_FINAL, N = 15, 1.5, 1000


class CountingResNetField(ResNetField):
    """ResNetField that counts its evaluations (every stage of every layer goes through _evaluate)."""

    calls = 0

    def _evaluate(self, params, t, z):
        CountingResNetField.calls += 1
        return super()._evaluate(params, t, z)


def hand_loop(model: ODENet, x: torch.Tensor) -> torch.Tensor:
    """RK4 with h = T/K through the layers of the model's field, then its head, written out with
    the same fused additions (``torch.add(..., alpha=)``) that sdl's stepper does."""
    field, h = model.field, T_FINAL / LAYERS
    z = torch.nn.functional.pad(x, (0, field.dim - x.shape[-1]))
    for weight, bias in zip(field.weight, field.bias, strict=True):

        def f(z, weight=weight, bias=bias):
            return torch.tanh(z @ weight.T + bias)

        k1 = f(z)
        k2 = f(torch.add(z, k1, alpha=h / 2))
        k3 = f(torch.add(z, k2, alpha=h / 2))
        k4 = f(torch.add(z, k3, alpha=h))
        z = torch.add(torch.add(torch.add(torch.add(z, k1, alpha=h / 6), k2, alpha=h / 3), k3, alpha=h / 3), k4, alpha=h / 6)
    return model.head(z).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats, for CI")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    model = ODENet(CountingResNetField(2, "tanh", num_layers=LAYERS), t_final=T_FINAL, method="rk4")
    x = torch.randn(N, 2)

    CountingResNetField.calls = 0
    logits = model(x)
    evaluations = CountingResNetField.calls
    gap = (logits - hand_loop(model, x)).abs().max().item()

    def forward_backward(forward):
        def run():
            model.zero_grad(set_to_none=True)
            forward(x).sum().backward()

        return run

    def forward_only(forward):
        def run():
            with torch.no_grad():
                forward(x)

        return run

    repeats = 5 if args.quick else 200
    header = f"ResNetField(2, tanh, {LAYERS} layers), rk4, N = {N}, float32, 1 thread"
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}")
    for title, wrap in (("forward + backward", forward_backward), ("forward only, no grad", forward_only)):
        medians = compare({"ODENet": wrap(model), "hand loop": wrap(lambda x: hand_loop(model, x))}, repeats=repeats)
        print(f"\n# ODENet, {header}, {title}")
        print(table(medians, baseline="hand loop"))
    print(f"\nfield evaluations per forward pass: {evaluations} (RK4 needs {4 * LAYERS})")
    print(f"max |ODENet logits - hand loop logits|: {gap:.1e}")


if __name__ == "__main__":
    main()
