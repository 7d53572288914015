"""Face data for the faces tests: Olivetti (from ../shared, skipped without it) and generated "people"."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

OLIVETTI_ZIP = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "faces" / "olivetti" / "att_faces.zip"


@pytest.fixture(scope="session")
def olivetti(tmp_path_factory) -> Path:
    """The AT&T / Olivetti folder (s1 ... s40, ten PGM crops each), unpacked once per session."""
    if not OLIVETTI_ZIP.is_file():
        pytest.skip(f"Olivetti faces not available ({OLIVETTI_ZIP})")
    target = tmp_path_factory.mktemp("olivetti")
    with zipfile.ZipFile(OLIVETTI_ZIP) as archive:
        archive.extractall(target)
    return target / "att_faces"


def write_people(folder: Path, people: int = 8, images: int = 6, size: int = 32, extension: str = ".png") -> Path:
    """A folder of generated "people": each person a fixed random pattern, each image a noisy shifted copy.

    Without an extension (`extension=""`) the files are PNGs named like `img0`, as some photo exports are.
    """
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for person in range(people):
        base = torch.rand(3, size // 4, size // 4, generator=generator)
        base = torch.nn.functional.interpolate(base[None], size=(size, size), mode="nearest")[0]
        person_dir = folder / f"person{person:02d}"
        person_dir.mkdir(parents=True, exist_ok=True)
        for index in range(images):
            noisy = (base + 0.08 * torch.randn(base.shape, generator=generator)).clamp(0, 1)
            shifted = torch.roll(noisy, shifts=(index % 3 - 1, index % 2), dims=(1, 2))
            array = (shifted * 255).byte().permute(1, 2, 0).numpy()
            Image.fromarray(array).save(person_dir / f"img{index}{extension}", format="PNG")
    return folder


@pytest.fixture
def people_folder(tmp_path) -> Path:
    return write_people(tmp_path / "people")
