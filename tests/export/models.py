"""Small model settings shared by the export tests."""

from __future__ import annotations

# A fast stride-8 backbone for 64x64 scenes (as tests/tasks/detection's, narrower).
SMALL_BACKBONE = {
    "layers": [
        {"conv": {"out": 8, "kernel": 3, "stride": 2, "padding": 1}}, "bn", "relu",
        {"conv": {"out": 16, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
        {"conv": {"out": 16, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
    ]
}  # fmt: skip
