"""Diagnosis tests run their tiny models on one thread, and leave torch's thread count as they found it."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # `fit(threads=N)` sets torch's global thread count; restore it so other test modules are unaffected.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
