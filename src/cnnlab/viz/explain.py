"""`cnnlab explain`'s library side: Grad-CAM and feature maps of one image file for a trained run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.errors import ConfigError, DataError
from cnnlab.evaluate.predict import read_image
from cnnlab.runs import LoadedRun, load_run
from cnnlab.viz.features import feature_maps, save_feature_maps
from cnnlab.viz.gradcam import grad_cam, gradcam_panel
from cnnlab.viz.images import save_png


@dataclass
class Explanation:
    image: Path
    predicted: str
    probability: float
    explained_class: str
    layer: str
    gradcam_path: Path
    feature_paths: list[Path] = field(default_factory=list)
    feature_labels: list[str] = field(default_factory=list)  # the stage of each feature-map PNG


def class_index(classes: list[str], name: str | None) -> int | None:
    """Index of a class given by name (or by index when no class has that name); None stays None."""
    if name is None:
        return None
    if name in classes:
        return classes.index(name)
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
    raise ConfigError(f"class {name!r} is not one of the run's classes ({shown})")


def explain_image(
    run: str | Path | LoadedRun,
    image_path: str | Path,
    class_name: str | None = None,
    out_dir: str | Path | None = None,
    layer: str | None = None,
    channels: int = 16,
) -> Explanation:
    """Write `<stem>_gradcam.png` and one `<stem>_features_<i>_<stage>.png` per conv stage into `out_dir`.

    Args:
        run: a run folder (or an already loaded run).
        image_path: any image PIL reads; converted to the run's channels and size as `cnnlab predict` does.
        class_name: the class to explain (default: the predicted one).
        out_dir: where the PNGs go (default: `<run>/explain`).
        layer: Grad-CAM target module name (default: the last spatial conv layer).
        channels: feature maps shown per stage.

    Raises:
        DataError: the image is missing or unreadable. RunError: the run folder is not one.
    """
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    path = Path(image_path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    image = read_image(path, loaded.input_shape[0], tuple(loaded.input_shape[1:]))
    device = next(loaded.model.parameters()).device
    x = loaded.preprocess(image[None].to(device))
    result = grad_cam(loaded.model, x, class_index(loaded.classes, class_name), layer)
    out = Path(out_dir) if out_dir else loaded.run_dir / "explain"
    gradcam_path = save_png(gradcam_panel(image, result.heatmap[0]), out / f"{path.stem}_gradcam.png")
    stages = feature_maps(loaded.model, x)
    feature_paths = save_feature_maps(stages, out, f"{path.stem}_features", channels)
    predicted = int(result.predicted[0])
    return Explanation(
        path,
        loaded.classes[predicted],
        float(result.probabilities[0, predicted]),
        loaded.classes[int(result.class_index[0])],
        result.layer,
        gradcam_path,
        feature_paths,
        [stage.label for stage in stages],
    )
