"""The parameter average: one update by hand, its warm-up, and off at decay 0."""

from __future__ import annotations

import numpy as np
import pytest

from senet_jax.semi_supervised import ema


def test_update_moves_the_average_by_one_minus_decay():
    params = {"w": np.array([3.0, -1.0], np.float32), "b": np.float32(10.0)}
    average = ema.init_ema({"w": np.array([1.0, 1.0], np.float32), "b": np.float32(0.0)}, 0.9)
    late = 1_000  # past the warm-up: (1 + 1000) / (10 + 1000) > 0.9, so the decay is 0.9
    average = ema.update_ema(average, params, 0.9, late)
    np.testing.assert_allclose(average["w"], [0.9 * 1 + 0.1 * 3, 0.9 * 1 - 0.1 * 1], rtol=1e-6)
    assert float(average["b"]) == pytest.approx(1.0)
    average = ema.update_ema(average, params, 0.9, late + 1)
    np.testing.assert_allclose(average["w"], [0.9 * 1.2 + 0.3, 0.9 * 0.8 - 0.1], rtol=1e-6)


def test_the_decay_warms_up_as_one_plus_step_over_ten_plus_step():
    assert float(ema.decay_at(0.999, 0)) == pytest.approx(0.1)
    assert float(ema.decay_at(0.999, 90)) == pytest.approx(0.91)
    assert float(ema.decay_at(0.999, 10**6)) == pytest.approx(0.999)


def test_a_short_run_keeps_almost_nothing_of_the_initial_weights():
    """500 steps at 0.999 (configs/cifar10.py:fixmatch): without the warm-up the average would
    still be 0.999**500 = 61% initialisation; with it, well under 1%."""
    average = ema.init_ema({"w": np.float32(1.0)}, 0.999)  # the initial weights: 1
    trained = {"w": np.float32(0.0)}  # the live weights: 0 from the first step on
    for step in range(500):
        average = ema.update_ema(average, trained, 0.999, step)
    assert 0.999**500 > 0.6
    assert float(average["w"]) < 0.01


def test_decay_zero_keeps_no_average_and_evaluates_the_live_weights():
    params = {"w": np.ones(3, np.float32)}
    assert ema.init_ema(params, 0.0) is None
    assert ema.update_ema(None, params, 0.0, 0) is None

    class State:
        pass

    state = State()
    state.params, state.ema_params = params, None
    assert ema.evaluation_params(state) is params
    state.ema_params = {"w": np.zeros(3, np.float32)}
    assert ema.evaluation_params(state) is state.ema_params
