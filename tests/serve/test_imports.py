"""The server imports no training code: loading a run and answering requests pulls in no `cnnlab.train` module
(a deployment image can leave the trainer out, and a server cannot start training by accident)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import io, sys
from PIL import Image
from fastapi.testclient import TestClient
from cnnlab.cli.serve_cmd import load
from cnnlab.serve.app import create_app
from cnnlab.serve.settings import ServeSettings

settings = ServeSettings()
adapter = load({{"run": {run!r}, "backend": "torch", "settings": settings.to_dict()}})
image = io.BytesIO()
Image.new("L", (28, 28), 0).save(image, format="PNG")
with TestClient(create_app(adapter, settings)) as client:
    assert client.post("/predict", files={{"file": ("x.png", image.getvalue(), "image/png")}}).status_code == 200
    assert client.get("/metrics").status_code == 200
print(sorted(m for m in sys.modules if m.startswith("cnnlab.train")))
"""


def test_serving_a_run_imports_no_training_code(classification_run):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(run=str(classification_run))], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
