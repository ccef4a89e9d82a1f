"""ℓ₂ PGD against classifiers whose smallest adversarial perturbation is known exactly."""

import itertools

import pytest
import torch

from sdl.stability import classification_margin, pgd_l2, robust_accuracy

F64 = torch.float64


def _linear_binary(n=200, d=5):
    """g(x) = w·x + c; the nearest point of the other class is at |g(x)|/‖w‖."""
    w, c = torch.randn(d, dtype=F64), torch.tensor(0.3, dtype=F64)
    x = torch.randn(n, d, dtype=F64)
    model = lambda points: points @ w + c  # noqa: E731
    logits = model(x)
    return model, x, (logits > 0).long(), logits.abs() / w.norm()


def _linear_softmax(n=200, d=5, classes=4):
    """g(x) = Wx + c; the smallest change of class is min_{j≠y} (g_y - g_j)(x) / ‖w_y - w_j‖."""
    weight, bias = torch.randn(classes, d, dtype=F64), torch.randn(classes, dtype=F64)
    x = torch.randn(n, d, dtype=F64)
    model = lambda points: points @ weight.T + bias  # noqa: E731
    logits = model(x)
    y = logits.argmax(-1)
    gaps = logits.gather(-1, y[:, None]) - logits  # (n, C), 0 at y
    distances = (weight[y][:, None, :] - weight[None, :, :]).norm(dim=-1)  # ‖w_y - w_j‖
    exact = (gaps / distances).masked_fill(torch.nn.functional.one_hot(y, classes).bool(), float("inf")).min(-1).values
    return model, x, y, exact


@pytest.mark.parametrize("problem", [_linear_binary, _linear_softmax])
def test_pgd_flips_every_point_just_beyond_the_exact_distance_and_none_just_within(problem):
    """ε = 1.01 × the exact distance: every point flips (targeted: one attack per competing class,
    each with a constant gradient); ε = 0.99 ×: none can, and none does."""
    model, x, y, exact = problem()
    options = {"steps": 50, "restarts": 2, "targeted": True, "generator": torch.Generator().manual_seed(0)}
    beyond = pgd_l2(model, x, y, 1.01 * exact, **options)
    within = pgd_l2(model, x, y, 0.99 * exact, **options)
    assert (classification_margin(model(beyond), y) < 0).all()
    assert (classification_margin(model(within), y) > 0).all()
    assert ((beyond - x).norm(dim=-1) <= 1.01 * exact * (1 + 1e-12)).all()


def test_the_untargeted_margin_attack_can_miss_the_nearest_class():
    """Why ``targeted`` exists: following the lowest g_y - g_j now misses some nearest boundaries."""
    model, x, y, exact = _linear_softmax()
    adversarial = pgd_l2(model, x, y, 1.01 * exact, steps=50)
    flipped = classification_margin(model(adversarial), y) < 0
    assert 0.5 < flipped.double().mean() < 1.0


def test_pgd_stays_in_the_ball_and_the_box():
    model, x, y, _ = _linear_softmax()
    x = torch.rand_like(x)
    adversarial = pgd_l2(model, x, y, 0.5, steps=10, restarts=3, bounds=(0.0, 1.0))
    assert ((adversarial - x).norm(dim=-1) <= 0.5 * (1 + 1e-12)).all()
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0


def test_robust_accuracy_falls_with_the_radius_and_starts_at_the_clean_accuracy():
    model, x, _, _ = _linear_softmax()
    y = torch.randint(0, 4, (x.shape[0],))  # some points misclassified from the start
    clean = (model(x).argmax(-1) == y).double().mean().item()
    values = [robust_accuracy(model, x, y, eps, steps=20) for eps in (0.0, 0.2, 0.5, 2.0)]
    assert values[0] == pytest.approx(clean)
    assert all(a >= b for a, b in itertools.pairwise(values)) and values[-1] < values[0]


def test_classification_margin_by_hand():
    logits = torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, -1.0]])
    assert classification_margin(logits, torch.tensor([0, 2])).tolist() == [1.0, -4.0]
    assert classification_margin(torch.tensor([1.5, 1.5]), torch.tensor([1, 0])).tolist() == [1.5, -1.5]


def test_pgd_rejects_a_negative_radius():
    model, x, y, _ = _linear_binary(4)
    with pytest.raises(ValueError, match="eps must be ≥ 0"):
        pgd_l2(model, x, y, -1.0)
