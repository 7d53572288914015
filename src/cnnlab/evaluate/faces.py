"""A faces run used for what it was trained for: embed faces, verify pairs, search a gallery, evaluate people.

Every image goes through the crop path training used (`tasks.faces.data.crop_files`: decode, find the largest
face, crop with the margin, resize), then the run's preprocessing and model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import ConfigError, DataError, RunError
from cnnlab.runfiles import read_results
from cnnlab.runs import LoadedRun, load_run


@dataclass
class FaceRun:
    """A loaded faces run with the crop settings, the validation-chosen threshold and the model's fingerprint."""

    run: LoadedRun
    crop: Any  # tasks.faces.data.CropSettings
    threshold: float | None
    rule: str
    fingerprint: str

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def dim(self) -> int:
        return int(self.run.model.embedding_dim)

    def embed_crops(self, crops: torch.Tensor) -> torch.Tensor:
        return self.run.task.embed(self.run.model, self.run.preprocess, crops)

    def embed_files(self, paths: list[str], skip_invalid: bool = False) -> tuple[torch.Tensor, list[str], list[str]]:
        """(embeddings, the files embedded, one line per file skipped) for image files."""
        from cnnlab.tasks.faces.data import crop_files

        crops, kept, skipped = crop_files([str(p) for p in paths], self.crop, skip_invalid)
        return self.embed_crops(crops), [str(paths[i]) for i in kept], skipped

    def require_threshold(self) -> float:
        if self.threshold is None:
            raise RunError(
                f"{self.run_dir}: no 'same person' threshold in results.json (the run had no validation people, "
                "or training did not finish); pass --threshold T"
            )
        return self.threshold


def load_face_run(run_dir: str | Path, detect: bool | None = None, checkpoint: str = "best") -> FaceRun:
    """A faces run from its folder; `detect=False` takes images as crops whatever the run was trained with."""
    from cnnlab.tasks.faces.data import crop_settings
    from cnnlab.tasks.faces.task import model_fingerprint

    run = load_run(run_dir, checkpoint=checkpoint)
    if run.task is None or run.task.name != "faces":
        kind = run.task.name if run.task is not None else "classification"
        raise ConfigError(f"{run_dir}: a {kind} run, not a faces run (train one with `cnnlab faces train`)")
    settings = crop_settings(run.task.options, int(run.meta["input_shape"][0]))
    if detect is not None:
        settings = replace(settings, detect=detect)
    calibration = (read_results(run.run_dir) or {}).get("calibration") or {}
    threshold = calibration.get("threshold")
    return FaceRun(
        run,
        settings,
        None if threshold is None else float(threshold),
        str(calibration.get("rule", "")),
        model_fingerprint(run.model),
    )


def people_images(folder: str | Path) -> tuple[list[str], list[str]]:
    """(image paths, person name of each) of a folder with one sub-folder per person (train/val/test merged)."""
    from cnnlab.tasks.faces.data import _merged, _people_files

    files = _merged(_people_files(Path(folder)))
    if not files.paths:
        raise DataError(f"{folder}: no images found; expected one sub-folder of images per person")
    return files.paths, files.labels


@dataclass
class FaceSplit:
    """The people of one split, embedded: crops, embeddings, labels (into `people`), files, and the report."""

    crops: torch.Tensor
    embeddings: torch.Tensor
    labels: torch.Tensor
    people: list[str]
    paths: list[str]
    report: dict[str, Any]
    evaluation: Any  # tasks.faces.metrics.FaceEvaluation (with the ROC arrays)


def embed_people(face_run: FaceRun, data: str | Path | None = None, split: str = "test") -> FaceSplit:
    """A run's own `split` people (re-read from its data folder) or the people of `data`, embedded and scored."""
    from cnnlab.tasks.faces.data import crop_files
    from cnnlab.tasks.faces.evaluation import face_evaluation

    paths, names = people_images(data) if data is not None else _run_split_files(face_run, split)
    crops, kept, _ = crop_files(paths, face_run.crop, skip_invalid=face_run.run.task.options.skip_invalid)
    kept_paths, kept_names = [paths[i] for i in kept], [names[i] for i in kept]
    people = sorted(set(kept_names))
    index = {name: i for i, name in enumerate(people)}
    labels = torch.tensor([index[name] for name in kept_names], dtype=torch.int64)
    embeddings = face_run.embed_crops(crops)
    report, evaluation = face_evaluation(embeddings, labels, face_run.threshold)
    report["source"] = str(data) if data is not None else f"the run's {split} people"
    return FaceSplit(crops, embeddings, labels, people, kept_paths, report, evaluation)


def evaluate_face_run(
    run_dir: str | Path, data: str | Path | None = None, split: str = "test", detect: bool | None = None
) -> tuple[FaceSplit, FaceRun]:
    """The test report (verification, identification, open set) of a run on its own test people or on `data`."""
    face_run = load_face_run(run_dir, detect)
    return embed_people(face_run, data, split), face_run


def _run_split_files(face_run: FaceRun, split: str) -> tuple[list[str], list[str]]:
    """The files of the run's own `split` people, re-read from its data folder."""
    meta = face_run.run.meta
    people = (meta.get("data", {}).get("people") or {}).get(split)
    if not people:
        raise ConfigError(f"{face_run.run_dir}: the run has no {split} people; pass --data FOLDER")
    paths_saved = meta.get("data", {}).get("paths", {})
    folder = paths_saved.get("test_data") if split == "test" and paths_saved.get("test_data") else None
    folder = folder or paths_saved.get("data")
    if not folder or not Path(folder).is_dir():
        raise DataError(f"{face_run.run_dir}: its data folder {folder!r} is gone; pass --data FOLDER")
    paths, names = people_images(folder)
    wanted = set(people)
    chosen = [(p, n) for p, n in zip(paths, names) if n in wanted]
    return [p for p, _ in chosen], [n for _, n in chosen]
