"""The one small training both the distributed tests and their worker use."""

from __future__ import annotations

from pathlib import Path

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"


def config_values() -> dict:
    # 1,800 training images in batches of 64: the last global batch (8 images) is split 4 + 4, and a
    # random rotation checks that both processes augment the global batch exactly as one process does.
    return {
        "model": "lenet5_modern",
        "data": str(MNIST),
        "train_samples": 2000,
        "epochs": 3,
        "batch_size": 64,
        "optimizer": {"name": "sgd", "lr": 0.02},  # Adam would amplify round-off in near-zero gradients
        "schedule": {"name": "cosine"},
        "augment": {"rotate": 10},
        "threads": 1,
        "progress": False,
    }


def flags() -> list[str]:
    """The same training as `cnnlab train` flags."""
    result = []
    for key, value in config_values().items():
        flag = "--" + key.replace("_", "-")
        if key == "augment":
            result += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, dict):
            result += [item for sub, v in value.items() for item in (f"{flag}.{sub}", str(v))]
        elif isinstance(value, bool):
            result.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            result += [flag, str(value)]
    return result
