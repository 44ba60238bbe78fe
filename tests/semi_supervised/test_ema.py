"""The parameter average: one update by hand, and off at decay 0."""

from __future__ import annotations

import numpy as np
import pytest

from senet_jax.semi_supervised import ema


def test_update_moves_the_average_by_one_minus_decay():
    params = {"w": np.array([3.0, -1.0], np.float32), "b": np.float32(10.0)}
    average = ema.init_ema({"w": np.array([1.0, 1.0], np.float32), "b": np.float32(0.0)}, 0.9)
    average = ema.update_ema(average, params, 0.9)
    np.testing.assert_allclose(average["w"], [0.9 * 1 + 0.1 * 3, 0.9 * 1 - 0.1 * 1], rtol=1e-6)
    assert float(average["b"]) == pytest.approx(1.0)
    average = ema.update_ema(average, params, 0.9)
    np.testing.assert_allclose(average["w"], [0.9 * 1.2 + 0.3, 0.9 * 0.8 - 0.1], rtol=1e-6)


def test_decay_zero_keeps_no_average_and_evaluates_the_live_weights():
    params = {"w": np.ones(3, np.float32)}
    assert ema.init_ema(params, 0.0) is None
    assert ema.update_ema(None, params, 0.0) is None

    class State:
        pass

    state = State()
    state.params, state.ema_params = params, None
    assert ema.evaluation_params(state) is params
    state.ema_params = {"w": np.zeros(3, np.float32)}
    assert ema.evaluation_params(state) is state.ema_params
