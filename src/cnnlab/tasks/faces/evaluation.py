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


def format_face_report(report: dict[str, Any]) -> str:
    """The report as the lines `faces train` and `faces evaluate` print (the EER line comes last, apart)."""
    v = report["verification"]
    lines = [
        f"people: {report['people']}  images: {report['images']}  "
        f"pairs: {v['genuine_pairs']} same-person, {v['impostor_pairs']} different",
        f"verification AUC: {v['auc']:.4f}  "
        + "  ".join(f"TAR@FAR={far}: {tar:.4f}" for far, tar in v["tar_at_far"].items()),
    ]
    for row in (report.get("identification") or {}).values():
        if row:
            lines.append(
                f"identification, {row['enroll_per_person']} enrolled image(s) per person: "
                f"top-1 {row['top1']:.4f}  top-5 {row['top5']:.4f}  ({row['people']} people)"
            )
    open_set = report.get("open_set")
    if open_set:
        rates = "  ".join(f"DIR@FAR={far}: {rate:.4f}" for far, rate in open_set["dir_at_far"].items())
        lines.append(f"open set ({open_set['unknown_people']} of the people never enrolled): {rates}")
    pairs, at = report.get("verification_at_threshold"), report.get("open_set_at_threshold")
    if pairs:
        line = (
            f"at the validation threshold {pairs['threshold']:.4f}: same-person pairs accepted {pairs['tar']:.4f}, "
            f"different-person pairs accepted {pairs['far']:.4f}"
        )
        if at:
            line += f", never-enrolled people rejected {at['unknown_rejection_rate']:.4f}"
        lines.append(line)
    lines += [f"note: {note}" for note in report.get("notes") or []]
    return "\n".join(lines)


__all__ = ["face_evaluation", "face_report", "format_face_report"]
