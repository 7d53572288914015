"""The faces test report: every figure results.json and `cnnlab faces evaluate` give for a set of unseen people."""

from __future__ import annotations

from typing import Any

import torch

from cnnlab.tasks.faces.metrics import FaceEvaluation, evaluate_faces, pair_scores


def face_evaluation(
    embeddings: torch.Tensor, labels: torch.Tensor, threshold: float | None
) -> tuple[dict[str, Any], FaceEvaluation]:
    """(the plain report, the evaluation with its ROC arrays for the plot)."""
    evaluation = evaluate_faces(embeddings, labels, threshold)
    report = {
        "people": int(torch.unique(labels).numel()),
        "images": len(labels),
        **evaluation.to_dict(),
    }
    if threshold is not None:
        report["verification_at_threshold"] = _pairs_at(embeddings, labels, threshold)
    return report, evaluation


def face_report(embeddings: torch.Tensor, labels: torch.Tensor, threshold: float | None) -> dict[str, Any]:
    """What results.json records under "test" for a faces run."""
    return face_evaluation(embeddings, labels, threshold)[0]


def _pairs_at(embeddings: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, float]:
    """Same-person pairs accepted (TAR) and different-person pairs accepted (FAR) at a fixed threshold."""
    pairs = pair_scores(embeddings, labels)
    accepted = pairs.scores >= threshold
    genuine = pairs.genuine.astype(bool)
    return {
        "threshold": round(float(threshold), 6),
        "tar": round(float(accepted[genuine].mean()) if genuine.any() else 0.0, 4),
        "far": round(float(accepted[~genuine].mean()) if (~genuine).any() else 0.0, 4),
    }


__all__ = ["face_evaluation", "face_report"]
