"""Export a trained run to ONNX or TorchScript, verified against the eager model."""

from cnnlab.export.exporters import ExportResult, export_run, onnx_session

__all__ = ["ExportResult", "export_run", "onnx_session"]
