"""A small generated sentence corpus: the label is carried by a few cue words among filler, so a Kim CNN learns
it in a couple of epochs (and chance is 1/3)."""

from __future__ import annotations

import random
from pathlib import Path

CUES = {
    "sport": ["goal", "match", "striker", "referee", "league"],
    "food": ["pasta", "recipe", "oven", "spicy", "dessert"],
    "tech": ["laptop", "software", "compiler", "battery", "server"],
}
FILLER = "the a of and it was this that very really quite some new old big small good bad day night".split()


def sentence(label: str, rng: random.Random) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 14))]
    for _ in range(rng.randint(1, 2)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(CUES[label]))
    return " ".join(words)


def write_lines(path: Path, count: int, seed: int = 0) -> Path:
    """`label sentence` lines (Kim's format)."""
    rng = random.Random(seed)
    labels = sorted(CUES)
    lines = [f"{label} {sentence(label, rng)}" for label in (labels[i % 3] for i in range(count))]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_class_files(folder: Path, count: int, seed: int = 0) -> Path:
    """One file per class (`corpus.sport`, `corpus.food`, ...), one sentence per line, as MR's rt-polarity.pos/.neg."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for label in CUES:
        (folder / f"corpus.{label}").write_text("\n".join(sentence(label, rng) for _ in range(count)) + "\n")
    return folder
