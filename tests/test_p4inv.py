import math
import os
import warnings

import pytest
import torch

from sdl.models.p4inv import MergeRule, P4InvLinear, P4InvScheduler, logdet_band_penalty


def EYE64(n):
    return torch.eye(n, dtype=torch.float64)


def _perturbed(n, dtype=torch.float64, init="identity", seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    layer = P4InvLinear(n, init=init, dtype=dtype)
    with torch.no_grad():
        layer.u.copy_(scale * torch.randn(n, generator=g, dtype=torch.float64))
        layer.v.copy_(torch.randn(n, generator=g, dtype=torch.float64))
        layer.bias.copy_(torch.randn(n, generator=g, dtype=torch.float64))
    return layer


def _random_invertible(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n, generator=g, dtype=torch.float64) + 3.0 * EYE64(n)


@pytest.mark.parametrize("init", ["identity", "reverse", "matrix"])
def test_forward_inverse_logdet_match_dense_algebra_float64(init):
    n = 7
    init = _random_invertible(n) if init == "matrix" else init
    layer = _perturbed(n, init=init)
    x = torch.randn(5, 3, n, dtype=torch.float64)
    y, logdet = layer(x)
    dense = layer.effective_matrix()
    torch.testing.assert_close(y, x @ dense.T + layer.bias, rtol=0, atol=1e-13)
    _, log_abs_det = torch.linalg.slogdet(dense)
    assert logdet.shape == (5, 3)
    torch.testing.assert_close(logdet, log_abs_det.expand(5, 3), rtol=0, atol=1e-12)
    x_back, logdet_inverse = layer.inverse(y)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-12)
    torch.testing.assert_close(logdet_inverse, -logdet, rtol=0, atol=1e-12)


def test_forward_inverse_roundtrip_and_merge_float32(device):
    n = 16
    layer = _perturbed(n, dtype=torch.float32, init="reverse").to(device)
    x = torch.randn(256, n, device=device)
    y, logdet = layer(x)
    x_back, logdet_inverse = layer.inverse(y)
    assert (x_back - x).abs().max() <= 1e-5
    assert (logdet + logdet_inverse).abs().max() <= 1e-6
    assert layer.merge().merged and layer.weight.device.type == device
    assert layer.weight.dtype == torch.float64 and layer.u.dtype == torch.float32
    assert (layer(x)[0] - y).abs().max() <= 1e-5


def test_reverse_init_sign_follows_number_of_transpositions():
    for n in range(1, 9):
        layer = P4InvLinear(n, init="reverse")
        sign, _ = torch.linalg.slogdet(layer.weight)
        assert layer.det_sign.item() == sign.item() and layer.log_abs_det.item() == 0.0
        torch.testing.assert_close(layer.weight @ layer.weight_inverse, EYE64(n), rtol=0, atol=0)


def test_merge_folds_perturbation_and_keeps_the_map():
    n = 6
    layer = _perturbed(n, init=_random_invertible(n, seed=3))
    dense = layer.effective_matrix()
    x = torch.randn(10, n, dtype=torch.float64)
    y_before, logdet_before = layer(x)
    report = layer.merge()
    assert report.merged and report.reason == "merged"
    assert torch.all(layer.u == 0)
    torch.testing.assert_close(layer.weight, dense, rtol=0, atol=1e-14)
    torch.testing.assert_close(layer.weight_inverse, torch.linalg.inv(dense), rtol=0, atol=1e-12)
    sign, log_abs_det = torch.linalg.slogdet(dense)
    assert layer.det_sign.item() == sign.item()
    assert abs(layer.log_abs_det.item() - log_abs_det.item()) < 1e-12
    y_after, logdet_after = layer(x)
    torch.testing.assert_close(y_after, y_before, rtol=0, atol=1e-13)
    torch.testing.assert_close(logdet_after, logdet_before, rtol=0, atol=1e-13)


def test_merge_tracks_a_sign_change_of_the_determinant():
    n = 5
    layer = P4InvLinear(n, dtype=torch.float64)
    with torch.no_grad():  # A + u vᵀ = diag(-0.5, 1, 1, 1, 1): update factor -0.5
        layer.u.copy_(-1.5 * EYE64(n)[0])
        layer.v.copy_(EYE64(n)[0])
    report = layer.merge()
    assert report.merged and report.factor == pytest.approx(-0.5)
    assert layer.det_sign.item() == -1.0
    assert layer.log_abs_det.item() == pytest.approx(math.log(0.5), abs=1e-15)


@pytest.mark.parametrize(
    "u_scale, expected",
    [(-1.0, "ill-conditioned"), (-1.0 + 1e-4, "ill-conditioned"), (float("nan"), "not finite")],
)
def test_adversarial_merge_is_skipped_without_nan(u_scale, expected):
    n = 4
    layer = P4InvLinear(n, init=_random_invertible(n, seed=1), dtype=torch.float64)
    state = [t.clone() for t in (layer.weight, layer.weight_inverse, layer.log_abs_det, layer.det_sign)]
    with torch.no_grad():  # u = -s A e₁, v = e₁: factor 1 - s, singular at s = 1
        layer.u.copy_(u_scale * layer.weight[:, 0])
        layer.v.copy_(EYE64(n)[0])
    report = layer.merge()
    assert not report.merged and report.reason == expected
    assert layer.num_skipped == 1 and layer.num_merges == 0
    for before, after in zip(state, (layer.weight, layer.weight_inverse, layer.log_abs_det, layer.det_sign), strict=True):
        assert torch.equal(before, after)
    y, logdet = layer(torch.randn(3, n, dtype=torch.float64))
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()


def test_merge_leaving_the_logdet_band_is_skipped():
    layer = P4InvLinear(3, dtype=torch.float64, rule=MergeRule(logdet_band=(-1.0, 1.0), band_margin=0.0))
    with torch.no_grad():  # factor e² → log|det| = 2 > 1
        layer.u.copy_(torch.tensor([math.exp(2.0) - 1.0, 0.0, 0.0]))
        layer.v.copy_(torch.tensor([1.0, 0.0, 0.0]))
    report = layer.merge()
    assert not report.merged and report.reason == "log|det| out of band"
    assert layer.log_abs_det.item() == 0.0


def _half_identity_with_factor(factor):
    """P4InvLinear(8) at A = ½ I (log|det| = -8 log 2 ≈ -5.55, below the default band [-2, 15] ± 0.5)
    with a pending perturbation u = (f - 1) A e₁, v = e₁ of update factor f."""
    n = 8
    layer = P4InvLinear(n, init=0.5 * EYE64(n), dtype=torch.float64)
    with torch.no_grad():
        layer.u.copy_((factor - 1.0) * layer.weight[:, 0])
        layer.v.copy_(EYE64(n)[0])
    return layer


def test_merge_from_outside_the_band_towards_it_is_accepted():
    layer = _half_identity_with_factor(2.0)  # log|det| -5.55 → -4.85: still outside, but closer
    before = layer.log_abs_det.item()
    report = layer.merge()
    assert report.merged and report.reason == "merged"
    assert layer.log_abs_det.item() == pytest.approx(before + math.log(2.0), abs=1e-14)
    sign, log_abs_det = torch.linalg.slogdet(layer.weight)
    assert layer.log_abs_det.item() == pytest.approx(log_abs_det.item(), abs=1e-14) and sign.item() == 1.0
    torch.testing.assert_close(layer.weight @ layer.weight_inverse, EYE64(8), rtol=0, atol=1e-15)


@pytest.mark.parametrize("factor", [0.5, -1.0])  # away from the band; |f| = 1 keeps log|det|, not closer
def test_merge_from_outside_the_band_away_from_it_or_not_closer_is_rejected(factor):
    layer = _half_identity_with_factor(factor)
    before = layer.log_abs_det.item()
    report = layer.merge()
    assert not report.merged and report.reason == "log|det| out of band"
    assert layer.log_abs_det.item() == before and layer.det_sign.item() == 1.0


def test_band_penalty_is_zero_inside_and_pushes_back_outside():
    layer = P4InvLinear(3, dtype=torch.float64, rule=MergeRule(logdet_band=(-1.0, 1.0)))
    assert logdet_band_penalty(layer).item() == 0.0
    with torch.no_grad():
        layer.u.copy_(torch.tensor([math.exp(2.0) - 1.0, 0.0, 0.0]))
        layer.v.copy_(torch.tensor([1.0, 0.0, 0.0]))
    penalty = logdet_band_penalty(layer)
    assert penalty.item() == pytest.approx(1.0)  # (2 - 1)²
    penalty.backward()
    # d/du₁ of (log(1 + u₁ v₁) - 1)² = 2 (1) v₁ / (1 + u₁ v₁) > 0: descent shrinks the determinant.
    assert layer.u.grad[0].item() == pytest.approx(2.0 / math.exp(2.0))


@pytest.mark.parametrize("order", [2, 3, 5])
def test_refinement_raises_the_residual_to_the_power_of_the_order(order):
    n = 6
    a = _random_invertible(n, seed=2)
    layer = P4InvLinear(n, init=a)
    noise = 1e-3 * torch.randn(n, n, dtype=torch.float64)
    with torch.no_grad():
        layer.weight_inverse.add_(noise)
    residual = EYE64(n) - a @ layer.weight_inverse
    assert layer.refine_inverse(order)
    new_residual = EYE64(n) - a @ layer.weight_inverse
    torch.testing.assert_close(new_residual, torch.linalg.matrix_power(residual, order), rtol=0, atol=1e-14)
    norm = torch.linalg.matrix_norm
    assert norm(new_residual) <= norm(residual) ** order + 1e-15 and norm(residual) < 0.1


def test_refinement_is_skipped_when_it_would_diverge():
    layer = P4InvLinear(3)
    with torch.no_grad():
        layer.weight_inverse.mul_(3.0)
    assert not layer.refine_inverse()
    torch.testing.assert_close(layer.weight_inverse, 3.0 * EYE64(3))


def test_eval_mode_uses_merged_matrix_only_and_eval_merges_pending_perturbation():
    n = 4
    layer = _perturbed(n, dtype=torch.float64)
    x = torch.randn(8, n, dtype=torch.float64)
    y_train, logdet_train = layer(x)
    layer.eval()
    assert torch.all(layer.u == 0) and layer.num_merges == 1
    with torch.no_grad():  # eval ignores any perturbation
        layer.u.normal_()
    y_eval, logdet_eval = layer(x)
    torch.testing.assert_close(y_eval, y_train, rtol=0, atol=1e-13)
    torch.testing.assert_close(logdet_eval, logdet_train, rtol=0, atol=1e-13)
    torch.testing.assert_close(layer.inverse(y_eval)[0], x, rtol=0, atol=1e-12)


def test_loading_a_pending_perturbation_in_eval_mode_merges_it():
    n = 4
    trained = _perturbed(n, dtype=torch.float64)
    state = {name: t.clone() for name, t in trained.state_dict().items()}
    x = torch.randn(6, n, dtype=torch.float64)
    y_train, logdet_train = trained(x)
    loaded = P4InvLinear(n, dtype=torch.float64).eval()
    loaded.load_state_dict(state)
    assert torch.all(loaded.u == 0) and loaded.num_merges == 1
    y_eval, logdet_eval = loaded(x)
    torch.testing.assert_close(y_eval, y_train, rtol=0, atol=1e-13)
    torch.testing.assert_close(logdet_eval, logdet_train, rtol=0, atol=1e-13)
    torch.testing.assert_close(loaded.inverse(y_eval)[0], x, rtol=0, atol=1e-12)


def test_loading_a_rejected_perturbation_in_eval_mode_warns():
    layer = P4InvLinear(3, dtype=torch.float64)
    with torch.no_grad():  # factor 1 + vᵀu = 0: singular, the merge is rejected
        layer.u.copy_(torch.tensor([-1.0, 0.0, 0.0]))
        layer.v.copy_(torch.tensor([1.0, 0.0, 0.0]))
    loaded = P4InvLinear(3, dtype=torch.float64).eval()
    with pytest.warns(UserWarning, match=r"dropped on load_state_dict\(\) in eval mode \(ill-conditioned"):
        loaded.load_state_dict(layer.state_dict())
    assert loaded.num_skipped == 1 and torch.all(loaded.u == 0)


@pytest.mark.parametrize(
    "operation",
    [
        lambda layer: layer.eval(),
        lambda layer: layer.merge(),
        lambda layer: layer.refine_inverse(),
        lambda layer: layer.to(torch.float64),
        lambda layer: layer.load_state_dict(layer.state_dict()),
    ],
    ids=["eval", "merge", "refine_inverse", "to", "load_state_dict"],
)
def test_layer_stays_trainable_after_an_operation_under_inference_mode(operation):
    layer = P4InvLinear(3)  # float32 compute: the compute copies of A and A⁻¹ are new tensors
    with torch.no_grad():
        layer.u.normal_()
    with torch.inference_mode():
        operation(layer)
    tensors = dict(layer.named_parameters()) | dict(layer.named_buffers())
    assert not [name for name, tensor in tensors.items() if tensor.is_inference()]
    layer.train()
    y, logdet = layer(torch.randn(4, 3, dtype=layer.u.dtype))
    (y.sum() + logdet.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_state_stays_in_state_dtype_when_the_module_is_cast_and_reloaded():
    n = 5
    layer = P4InvLinear(n, init=_random_invertible(n), dtype=torch.float64)
    exact_inverse = layer.weight_inverse.clone()
    layer.float()
    assert layer.u.dtype == torch.float32 and layer.weight_inverse.dtype == torch.float64
    assert torch.equal(layer.weight_inverse, exact_inverse)
    y, _ = layer(torch.randn(2, n))
    assert y.dtype == torch.float32
    clone = P4InvLinear(n)
    clone.load_state_dict(layer.state_dict())
    x = torch.randn(3, n)
    torch.testing.assert_close(clone(x)[0], layer(x)[0], rtol=0, atol=0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="'identity', 'reverse'"):
        P4InvLinear(3, init="random")
    with pytest.raises(ValueError, match="singular"):
        P4InvLinear(2, init=torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ValueError, match="shape"):
        P4InvLinear(3, init=torch.eye(2))
    with pytest.raises(ValueError, match="last dimension 3"):
        P4InvLinear(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="no P4InvLinear"):
        P4InvScheduler(torch.nn.Linear(2, 2), torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), 0.1))
    with pytest.raises(ValueError, match="low < high"):
        MergeRule(logdet_band=(1.0, 0.0))


def test_scheduler_merges_every_n_steps_clears_optimizer_state_of_v_and_refines():
    model = torch.nn.Sequential(P4InvLinear(3), P4InvLinear(3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = P4InvScheduler(model, optimizer, merge_every=3, refine_every=2)
    x = torch.randn(4, 3)
    for step in range(1, 7):
        y, logdet = model[1](model[0](x)[0])
        (y.square().sum() - logdet.sum()).backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        merged = step % 3 == 0
        assert all(layer.num_merges == step // 3 for layer in model)
        assert all((layer.v in optimizer.state) != merged for layer in model)
        assert all(layer.u in optimizer.state for layer in model)
        assert len(scheduler.reports) == (2 if step >= 3 else 0)
    assert scheduler.merge_rounds == 2


def test_long_training_to_a_negative_determinant_keeps_inverse_and_logdet_exact():
    """≥ 10⁴ Adam steps, a merge every 10 steps, float32 compute: A A⁻¹ and log|det| stay exact."""
    torch.manual_seed(0)
    n = 8
    target = torch.randn(n, n, generator=torch.Generator().manual_seed(1))
    target[0] *= torch.sign(torch.linalg.det(target)) * -1.0  # det(target) < 0
    layer = P4InvLinear(n, bias=False)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    scheduler = P4InvScheduler(layer, optimizer, merge_every=10, refine_every=50)
    inputs = torch.randn(10_000, 8, n)
    for x in inputs:
        y, _ = layer(x)
        loss = (y - x @ target.T).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    assert layer.num_merges >= 900
    weight, weight_inverse = layer.weight, layer.weight_inverse
    assert (weight @ weight_inverse - EYE64(n)).abs().max() <= 1e-4
    sign, log_abs_det = torch.linalg.slogdet(weight)
    assert abs(layer.log_abs_det - log_abs_det) <= 1e-4
    assert layer.det_sign.item() == sign.item() == -1.0
    assert (weight - target.double()).abs().max() < 0.05  # it learned the target
    x = torch.randn(64, n)
    assert (layer.inverse(layer(x)[0])[0] - x).abs().max() <= 1e-5


# --- tests that kill surviving mutants of scripts/mutation.py (TESTING.md) ---------------------------------


def _layer_and_sgd():
    layer = P4InvLinear(2)
    return layer, torch.optim.SGD(layer.parameters(), 0.1)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: MergeRule(min_abs_factor=0.0), ValueError, r"^min_abs_factor must be a positive finite float, got 0\.0$"),
        (lambda: MergeRule(min_abs_factor=math.inf), ValueError, r"^min_abs_factor must be a positive finite float, got inf$"),
        (
            lambda: MergeRule(logdet_band=(1.0, 1.0)),
            ValueError,
            r"^logdet_band must be \(low, high\) with low < high, got \(1\.0, 1\.0\)$",
        ),
        (lambda: MergeRule(band_margin=-1.0), ValueError, r"^band_margin must be >= 0, got -1\.0$"),
        (lambda: P4InvLinear(2.5), ValueError, r"^dim must be a positive int, got 2\.5$"),
        (lambda: P4InvLinear(0), ValueError, r"^dim must be a positive int, got 0$"),
        (lambda: P4InvLinear(2, rule="strict"), TypeError, r"^rule must be a MergeRule, got str$"),
        (lambda: P4InvLinear(2, state_dtype=torch.int64), TypeError, r"^state_dtype must be a floating dtype, got torch\.int64$"),
        (lambda: logdet_band_penalty(torch.nn.Linear(2, 2)), ValueError, r"^Linear contains no P4InvLinear layer$"),
        (
            lambda: P4InvScheduler(*_layer_and_sgd(), merge_every=1.5),
            ValueError,
            r"^merge_every must be a positive int, got 1\.5$",
        ),
        (lambda: P4InvScheduler(*_layer_and_sgd(), merge_every=0), ValueError, r"^merge_every must be a positive int, got 0$"),
        (
            lambda: P4InvScheduler(*_layer_and_sgd(), refine_every=1.5),
            ValueError,
            r"^refine_every must be a positive int or None, got 1\.5$",
        ),
        (
            lambda: P4InvScheduler(*_layer_and_sgd(), refine_every=0),
            ValueError,
            r"^refine_every must be a positive int or None, got 0$",
        ),
        (
            lambda: P4InvScheduler(*_layer_and_sgd(), refine_order=2.5),
            ValueError,
            r"^refine_order must be an int >= 2, got 2\.5$",
        ),
        (
            lambda: P4InvScheduler(torch.nn.Linear(2, 2), torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), 0.1)),
            ValueError,
            r"^Linear contains no P4 layer: no P4InvLinear or P4OrthLinear$",
        ),
    ],
)
def test_bad_arguments_raise_naming_the_value(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_scheduler_defaults_and_smallest_valid_periods():
    scheduler = P4InvScheduler(*_layer_and_sgd())
    assert (scheduler.merge_every, scheduler.refine_every, scheduler.refine_order) == (10, 50, 2)
    scheduler = P4InvScheduler(*_layer_and_sgd(), merge_every=1, refine_every=1)
    assert (scheduler.merge_every, scheduler.refine_every) == (1, 1)
    assert P4InvScheduler(*_layer_and_sgd(), refine_every=None).refine_every is None


def test_scheduler_state_dict_resumes_the_merge_schedule():
    layer, optimizer = _layer_and_sgd()
    scheduler = P4InvScheduler(layer, optimizer, merge_every=10)
    for _ in range(23):
        scheduler.step()
    assert scheduler.state_dict() == {"steps": 23, "merge_rounds": 2}
    resumed = P4InvScheduler(layer, optimizer, merge_every=10)
    resumed.load_state_dict(scheduler.state_dict())
    assert (resumed.steps, resumed.merge_rounds) == (23, 2)
    for _ in range(6):
        resumed.step()
    assert resumed.merge_rounds == 2 and layer.num_merges == 2
    resumed.step()  # step 30
    assert resumed.merge_rounds == 3 and layer.num_merges == 3


def test_eval_logdets_of_a_matrix_init_are_plus_and_minus_log_abs_det():
    a = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64)  # det 6
    layer = P4InvLinear(3, init=a, dtype=torch.float64).eval()
    y, logdet = layer(torch.randn(4, 3, dtype=torch.float64))
    _, logdet_inverse = layer.inverse(y)
    torch.testing.assert_close(logdet, torch.full((4,), math.log(6.0), dtype=torch.float64), rtol=0, atol=1e-14)
    torch.testing.assert_close(logdet_inverse, torch.full((4,), -math.log(6.0), dtype=torch.float64), rtol=0, atol=1e-14)


def test_log_abs_det_perturbed_is_the_log_abs_det_of_the_effective_matrix():
    layer = _perturbed(5, init="reverse", scale=0.7)
    expected = torch.linalg.slogdet(layer.effective_matrix())[1]
    assert abs(float(expected)) > 0.1  # the perturbation changes the determinant
    torch.testing.assert_close(layer.log_abs_det_perturbed(), expected, rtol=0, atol=1e-13)


def test_band_penalty_below_the_band_is_the_squared_distance():
    # det A = e^{-2.5}, band (-2, 15): penalty (−2 − (−2.5))² = 0.25, and (15.75 − 15)² above it
    for log_det, expected in ((-2.5, 0.25), (15.75, 0.5625)):
        a = torch.diag(torch.tensor([math.exp(log_det), 1.0], dtype=torch.float64))
        layer = P4InvLinear(2, init=a, dtype=torch.float64)
        assert layer.band_penalty().item() == pytest.approx(expected, rel=1e-12)


def test_refine_defaults_to_order_two():
    a = _random_invertible(4, seed=3)
    layer = P4InvLinear(4, init=a)
    with torch.no_grad():
        layer.weight_inverse.add_(1e-3 * torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    residual = EYE64(4) - a @ layer.weight_inverse
    assert layer.refine()
    torch.testing.assert_close(EYE64(4) - a @ layer.weight_inverse, residual @ residual, rtol=0, atol=1e-14)


def test_a_layer_loaded_in_training_mode_evaluates_its_perturbation_without_eval():
    source = _perturbed(3)
    layer = P4InvLinear(3, dtype=torch.float64)
    layer.load_state_dict(source.state_dict())
    layer.training = False  # as sdl.training.evaluation_mode does: no eval(), so no merge
    x = torch.randn(4, 3, dtype=torch.float64)
    expected = x @ source.effective_matrix().T + source.bias.detach()
    torch.testing.assert_close(layer(x)[0], expected, rtol=0, atol=1e-13)


def test_train_in_training_mode_does_not_merge():
    layer = _perturbed(3)
    u = layer.u.detach().clone()
    layer.train()
    assert layer.num_merges == 0 and torch.equal(layer.u.detach(), u)


def test_a_rejected_merge_on_leaving_training_warns_at_the_caller_naming_the_event():
    layer = P4InvLinear(3, dtype=torch.float64)
    with torch.no_grad():
        layer.u.copy_(-layer.v / (layer.v @ layer.v))  # 1 + vᵀu = 0: ill-conditioned, rejected
    with pytest.warns(UserWarning, match=r"pending perturbation dropped on eval\(\) \(ill-conditioned") as record:
        layer.train(False)
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampolines add frames, so stacklevel points elsewhere there
        assert record[0].filename == __file__


def test_extra_repr_names_dim_bias_and_state_dtype():
    assert "dim=3, bias=True, state_dtype=torch.float64" in repr(P4InvLinear(3))
    assert "dim=2, bias=False, state_dtype=torch.float32" in repr(P4InvLinear(2, bias=False, state_dtype=torch.float32))


def test_init_checks_name_the_bad_value():
    with pytest.raises(TypeError, match=r"^init must be one of \('identity', 'reverse'\) or a torch\.Tensor, got int$"):
        P4InvLinear(2, init=3)
    with pytest.raises(ValueError, match=r"^init matrix is singular or nearly so \(condition number 1e\+13\)$"):
        P4InvLinear(2, init=torch.diag(torch.tensor([1.0, 1e-13], dtype=torch.float64)))
    with pytest.raises(ValueError, match=r"^init matrix must be finite, got 1 non-finite entries$"):
        P4InvLinear(2, init=torch.tensor([[1.0, math.nan], [0.0, 1.0]], dtype=torch.float64))


def test_a_float32_init_matrix_is_inverted_in_float64():
    a32 = torch.tensor([[3.0, 1.1], [0.7, 2.3]], dtype=torch.float32)
    a = a32.double()  # the same numbers, exactly
    layer = P4InvLinear(2, init=a32)
    assert layer.weight.dtype == layer.weight_inverse.dtype == layer.det_sign.dtype == torch.float64
    torch.testing.assert_close(layer.weight_inverse, torch.linalg.inv(a), rtol=0, atol=1e-15)
    assert layer.log_abs_det.item() == pytest.approx(math.log(abs(float(torch.linalg.det(a)))), rel=0, abs=1e-15)


def test_only_the_tracked_state_and_the_parameters_are_saved():
    keys = set(P4InvLinear(3).state_dict())
    assert keys == {"weight", "weight_inverse", "log_abs_det", "det_sign", "u", "v", "bias"}


def test_a_fresh_layer_switched_out_of_training_directly_ignores_u():
    # only a training-mode pass marks the perturbation as in use (see P4InvLinear's docstring)
    layer = P4InvLinear(3, init="reverse", dtype=torch.float64)
    layer.training = False
    with torch.no_grad():
        layer.u.fill_(0.5)
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x)[0], x.flip(-1), rtol=0, atol=0)


def test_the_constructor_puts_parameters_and_state_on_the_given_device(device):
    init = _random_invertible(3).to(device)
    layer = P4InvLinear(3, init=init, device=device)
    assert {t.device.type for t in [*layer.parameters(), *layer.buffers()]} == {torch.device(device).type}
    assert layer.weight.dtype == torch.float64 and layer.u.dtype == torch.get_default_dtype()


def test_effective_matrix_is_in_the_state_dtype():
    layer = P4InvLinear(2, state_dtype=torch.float32, dtype=torch.float64)
    with torch.no_grad():
        layer.u.fill_(1.0 / 3.0)
    matrix = layer.effective_matrix()
    assert matrix.dtype == torch.float32
    torch.testing.assert_close(matrix, (torch.eye(2) + torch.outer(layer.u.float(), layer.v.float())), rtol=0, atol=0)


def test_scheduler_warns_once_when_most_merges_of_a_layer_are_refused():
    """A loss that shrinks A pulls log|det| below a narrow band: every merge after the first few is
    refused, and the scheduler says so once (not at every merge); a layer inside its band never warns."""
    torch.manual_seed(0)
    narrow = P4InvLinear(4, rule=MergeRule(logdet_band=(-0.05, 0.05), band_margin=0.0))
    wide = P4InvLinear(4)
    optimizer = torch.optim.Adam([*narrow.parameters(), *wide.parameters()], lr=1e-2)
    scheduler = P4InvScheduler(torch.nn.ModuleList([narrow, wide]), optimizer, merge_every=2)
    x = torch.randn(16, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(80):
            loss = narrow(x)[0].square().sum() + (wide(x)[0] - x).square().sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    messages = [str(w.message) for w in caught if "merges refused" in str(w.message)]
    assert narrow.num_skipped > narrow.num_merges and narrow.num_skipped >= 10 and wide.num_skipped == 0
    assert len(messages) == 1 and messages[0].startswith("P4InvLinear(dim=4")
    assert "log|det| out of band" in messages[0] and "(-0.05, 0.05)" in messages[0]
