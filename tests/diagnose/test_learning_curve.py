"""Learning-curve arithmetic: nested stratified subsets and the verdict on more data."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.diagnose.learning_curve import CurvePoint, nested_subsets, parse_fractions, summarize
from cnnlab.errors import ConfigError


def point(size: int, accuracy: float) -> CurvePoint:
    return CurvePoint(size / 1000, size, accuracy, 0.3, 1.0, 5, 10, 1.0, "")


def test_subsets_are_stratified_and_nested():
    labels = np.repeat([0, 1, 2], [100, 50, 10])
    subsets = nested_subsets(labels, [0.1, 0.5, 1.0], seed=3)
    assert [np.bincount(labels[subsets[f]]).tolist() for f in (0.1, 0.5, 1.0)] == [
        [10, 5, 1],
        [50, 25, 5],
        [100, 50, 10],
    ]
    assert set(subsets[0.1]) <= set(subsets[0.5]) <= set(subsets[1.0])


def test_steep_curve_says_more_data_helps():
    curve = summarize([point(125, 0.80), point(250, 0.86), point(500, 0.90), point(1000, 0.93)])
    assert curve.more_data_helps
    assert curve.gain_per_doubling == pytest.approx(0.03)
    assert 0.93 < curve.predicted_accuracy_2x < 0.97


def test_flat_curve_says_it_does_not():
    curve = summarize([point(250, 0.90), point(500, 0.931), point(1000, 0.934)])
    assert not curve.more_data_helps and "flattened" in curve.message


def test_fractions_are_checked():
    assert parse_fractions("1.0, 0.1,0.5") == [0.1, 0.5, 1.0]
    with pytest.raises(ConfigError):
        parse_fractions("0.5,2")
