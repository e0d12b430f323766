"""Shared fixtures: seeded float64 models and inputs from ``tests/cases.py``."""

from __future__ import annotations

import pytest

from cases import MODELS, make_inputs, make_model


@pytest.fixture(params=sorted(MODELS), ids=[f"model={name}" for name in sorted(MODELS)])
def model(request: pytest.FixtureRequest):
    """Each small float64 model in eval mode."""
    return make_model(request.param)


@pytest.fixture
def inputs():
    """Four float64 inputs in [0, 1]."""
    return make_inputs()
