"""Capabilities: what each field declares, and the booleans a config can check without a field."""

import pytest
import torch

import sdl
from sdl.fields import (
    AnalyticJacobian,
    Capabilities,
    DimwiseDifferentiable,
    Layered,
    LipschitzBounded,
    PairField,
    Separable,
    layer_count,
)
from sdl.models import GradientFlowField, HamiltonianField, HollowNet, ResNetField


def test_pair_state_and_separability_are_separate_capabilities():
    assert issubclass(Separable, PairField) and not issubclass(PairField, Separable)
    field = HamiltonianField(2, num_layers=3)
    assert isinstance(field, Separable) and isinstance(field, PairField)
    assert all(isinstance(layer, Separable) for layer in field.layers())
    assert not isinstance(ResNetField(2), PairField)


@pytest.mark.parametrize("cls", [ResNetField, GradientFlowField])
def test_the_layers_of_resnet_and_gradient_flow_fields_have_analytic_jacobians(cls):
    for layers in (None, 2):
        field = cls(2, num_layers=layers)
        assert all(isinstance(layer, AnalyticJacobian) for layer in field.layers())
        assert isinstance(field, LipschitzBounded)
    assert not any(isinstance(layer, AnalyticJacobian) for layer in HamiltonianField(2, num_layers=2).layers())


def test_layer_count_says_whether_a_field_is_layered():
    assert layer_count(ResNetField(2, num_layers=4)) == 4
    assert layer_count(ResNetField(2)) is None
    assert layer_count(lambda t, y: y) is None


@pytest.mark.parametrize(
    "field, expected",
    [
        (ResNetField(2, num_layers=3), Capabilities("ResNetField", layered=True)),
        (HamiltonianField(2), Capabilities("HamiltonianField", pair=True, separable=True)),
        (HollowNet(2), Capabilities("HollowNet", dimwise_differentiable=True)),
        (lambda t, y: y, Capabilities("function")),
    ],
)
def test_capabilities_of_a_field(field, expected):
    assert Capabilities.of(field) == expected


def test_capabilities_of_a_field_type_need_no_instance():
    assert Capabilities.of_type(HamiltonianField, layered=True) == Capabilities(
        "HamiltonianField", pair=True, separable=True, layered=True
    )
    assert Capabilities.of_type(HollowNet) == Capabilities("HollowNet", dimwise_differentiable=True)
    with pytest.raises(ValueError, match=r"layered=True needs a sdl.fields.Layered field type; HollowNet is not"):
        Capabilities.of_type(HollowNet, layered=True)
    with pytest.raises(TypeError, match="must be a class"):
        Capabilities.of_type(HollowNet(2))
    with pytest.raises(ValueError, match="a separable field acts on pairs"):
        Capabilities("mine", separable=True)


def test_capability_names_are_exported_from_sdl():
    for name in ("AnalyticJacobian", "DimwiseDifferentiable", "Layered", "LipschitzBounded", "PairField", "Separable"):
        assert getattr(sdl, name) is getattr(sdl.fields, name)
    assert isinstance(HollowNet(2), DimwiseDifferentiable) and issubclass(ResNetField, Layered)
    assert torch.is_tensor(ResNetField(2).lipschitz_bound())
