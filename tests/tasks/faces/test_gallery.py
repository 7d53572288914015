"""The face gallery: search numbers against numpy, the model stamp, damaged files, kills and concurrent writers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.errors import ConfigError, DataError, RunError
from cnnlab.tasks.faces.gallery import Gallery

MODEL = "model-a1b2"


def unit(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def expected_top(queries: np.ndarray, people: dict[str, np.ndarray], k: int, template: str):
    """Per query, the k best (name, score): max (or normalised mean) of plain numpy dot products."""
    results = []
    for query in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        scores = {}
        for name, rows in people.items():
            if template == "max":
                scores[name] = float((rows @ query).max())
            else:
                mean = rows.mean(0)
                scores[name] = float(mean @ query / np.linalg.norm(mean))
        results.append(sorted(scores.items(), key=lambda item: -item[1])[:k])
    return results


def assert_same_matches(got, expected, tolerance=1e-5):
    assert len(got) == len(expected)
    for got_row, expected_row in zip(got, expected):
        assert [name for name, _ in got_row] == [name for name, _ in expected_row]
        np.testing.assert_allclose([s for _, s in got_row], [s for _, s in expected_row], atol=tolerance)


@pytest.fixture
def enrolled(tmp_path):
    """A gallery of 12 people with 1-4 unit embeddings each (32-d), and those embeddings by name."""
    rng = np.random.default_rng(0)
    people = {f"person{i:02d}": unit(rng, 1 + i % 4, 32) for i in range(12)}
    with Gallery(tmp_path / "g.db", MODEL, 32) as gallery:
        for name, rows in people.items():
            gallery.enroll(name, torch.from_numpy(rows), [f"{name}/{j}.jpg" for j in range(len(rows))])
    return tmp_path / "g.db", people


# -- round trip --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["max", "mean"])
def test_identify_scores_are_numpy_dot_products(enrolled, template):
    path, people = enrolled
    queries = np.random.default_rng(1).standard_normal((7, 32)).astype(np.float32)
    with Gallery.open(path, MODEL, 32) as gallery:
        got = gallery.identify(torch.from_numpy(queries), top_k=5, template=template)
    assert_same_matches(got, expected_top(queries, people, 5, template))


def test_a_query_equal_to_an_enrolled_embedding_finds_its_person_at_one(enrolled):
    path, people = enrolled
    with Gallery.open(path, MODEL, 32) as gallery:
        matches = gallery.identify(torch.from_numpy(people["person07"][2:3]), top_k=3)
    assert matches[0][0][0] == "person07"
    assert matches[0][0][1] == pytest.approx(1.0, abs=1e-6)
    assert len(matches[0]) == 3


def test_top_k_beyond_the_people_enrolled_returns_everyone_and_an_empty_gallery_nobody(tmp_path):
    with Gallery(tmp_path / "g.db", MODEL, 4) as gallery:
        assert gallery.identify(torch.eye(4)[:2]) == [[], []]
        gallery.enroll("ann", torch.eye(4)[:1])
        gallery.enroll("bob", torch.eye(4)[1:2])
        matches = gallery.identify(torch.tensor([[3.0, 4.0, 0.0, 0.0]]), top_k=10)
    assert [name for name, _ in matches[0]] == ["bob", "ann"]
    np.testing.assert_allclose([score for _, score in matches[0]], [0.8, 0.6], atol=1e-6)


def test_embeddings_are_stored_as_float32_little_endian_blobs_with_their_source(tmp_path):
    vector = np.array([[0.6, 0.0, 0.8, 0.0]], dtype=np.float32)
    with Gallery(tmp_path / "g.db", MODEL, 4) as gallery:
        gallery.enroll("ann", torch.from_numpy(vector), ["photos/ann.jpg"])
    connection = sqlite3.connect(tmp_path / "g.db")
    blob, source = connection.execute("SELECT vector, source FROM embeddings").fetchone()
    meta = dict(connection.execute("SELECT key, value FROM cnnlab_face_gallery").fetchall())
    connection.close()
    np.testing.assert_allclose(np.frombuffer(blob, dtype="<f4"), vector[0], atol=1e-7)
    assert source == "photos/ann.jpg"
    assert (meta["model_id"], meta["dim"], meta["schema_version"]) == (MODEL, "4", "1")


# -- enroll, re-enroll, remove, list -----------------------------------------------------------------------------


def test_re_enrolling_a_name_adds_to_that_person(tmp_path):
    with Gallery(tmp_path / "g.db", MODEL, 4) as gallery:
        assert gallery.enroll("ann", torch.eye(4)[:2], ["a.jpg", "b.jpg"]) == 2
        assert gallery.enroll("ann", torch.eye(4)[2:3], ["c.jpg"]) == 3
        gallery.enroll("bob", torch.eye(4)[3:])
        assert gallery.people() == [("ann", 3), ("bob", 1)]
        assert len(gallery) == 4
        assert gallery.identify(torch.eye(4)[2:3], top_k=1)[0][0][0] == "ann"


def test_enroll_many_imports_several_people_in_one_call(tmp_path):
    with Gallery(tmp_path / "g.db", MODEL, 4) as gallery:
        assert gallery.enroll_many(["ann", "bob", "ann"], torch.eye(4)[:3]) == 3
        assert gallery.people() == [("ann", 2), ("bob", 1)]


def test_remove_deletes_the_person_and_their_embeddings(enrolled):
    path, people = enrolled
    with Gallery.open(path) as gallery:
        assert gallery.remove("person03") == len(people["person03"])
        names = [name for name, _ in gallery.people()]
        assert "person03" not in names and len(names) == 11
        matches = gallery.identify(torch.from_numpy(people["person03"]), top_k=11)
    assert all(name != "person03" for row in matches for name, _ in row)


def test_remove_of_an_unknown_name_suggests_the_closest(enrolled):
    path, _ = enrolled
    with Gallery.open(path) as gallery, pytest.raises(DataError, match=r"'persn03'.*did you mean 'person03'"):
        gallery.remove("persn03")


def test_a_second_gallery_object_sees_enrolls_and_removals_of_another(tmp_path):
    path = tmp_path / "g.db"
    with Gallery(path, MODEL, 4) as reader, Gallery(path, MODEL, 4) as writer:
        writer.enroll("ann", torch.eye(4)[:1])
        assert [n for n, _ in reader.identify(torch.eye(4)[:1])[0]] == ["ann"]  # loads the matrix
        writer.enroll("bob", torch.eye(4)[1:2])  # appended to the reader's matrix on its next search
        assert reader.identify(torch.eye(4)[1:2], top_k=1)[0][0][0] == "bob"
        writer.remove("ann")  # forces a reload
        assert [n for n, _ in reader.identify(torch.eye(4)[:1])[0]] == ["bob"]


def test_the_in_memory_matrix_stays_exact_through_many_appends(tmp_path):
    rng = np.random.default_rng(3)
    people: dict[str, np.ndarray] = {}
    with Gallery(tmp_path / "g.db", MODEL, 8) as reader, Gallery(tmp_path / "g.db", MODEL, 8) as writer:
        for step in range(9):  # each search appends the new rows to the reader's buffer, which grows now and then
            name = f"p{step % 6}"
            rows = unit(rng, 1 + step % 3, 8)
            people[name] = np.concatenate([people[name], rows]) if name in people else rows
            writer.enroll(name, torch.from_numpy(rows))
            queries = unit(rng, 4, 8)
            assert_same_matches(
                reader.identify(torch.from_numpy(queries), top_k=3), expected_top(queries, people, 3, "max")
            )
        assert reader.load() == sum(len(rows) for rows in people.values())


@pytest.mark.parametrize(
    ("embeddings", "sources", "message"),
    [
        (torch.ones(2, 5), None, r"shape \(2, 5\).*\(N, 4\)"),
        (torch.ones(4), None, r"shape \(4,\)"),
        (torch.ones(0, 4), None, "no embeddings"),
        (torch.tensor([[1.0, 0, 0, 0], [float("nan"), 0, 0, 0]]), None, "row 1 is not finite"),
        (torch.zeros(1, 4), None, "row 0 is all zeros"),
        (torch.ones(2, 4), ["only-one.jpg"], "1 sources for 2 embeddings"),
    ],
)
def test_enroll_rejects_bad_embeddings_and_changes_nothing(tmp_path, embeddings, sources, message):
    with Gallery(tmp_path / "g.db", MODEL, 4) as gallery:
        with pytest.raises(DataError, match=message):
            gallery.enroll("ann", embeddings, sources)
        assert gallery.people() == [] and len(gallery) == 0


def test_enroll_rejects_an_empty_name(tmp_path):
    with Gallery(tmp_path / "g.db", MODEL, 4) as gallery, pytest.raises(DataError, match="non-empty"):
        gallery.enroll("  ", torch.eye(4)[:1])


def test_bad_options_and_a_closed_gallery_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="exact, faiss, faiss-ivf"):
        Gallery(tmp_path / "g.db", MODEL, 4, index="annoy")
    gallery = Gallery(tmp_path / "g.db", MODEL, 4)
    with pytest.raises(ConfigError, match="max, mean"):
        gallery.identify(torch.eye(4), template="median")
    gallery.close()
    gallery.close()
    with pytest.raises(RunError, match="is closed"):
        gallery.people()


def test_faiss_missing_is_a_config_error_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    with pytest.raises(ConfigError, match="pip install faiss-cpu"):
        Gallery(tmp_path / "g.db", MODEL, 4, index="faiss")


# -- the stamp and foreign or damaged files ----------------------------------------------------------------------


def test_a_gallery_refuses_another_model_and_another_dimension(enrolled):
    path, _ = enrolled
    with pytest.raises(RunError, match=f"gallery g.db was made by model {MODEL}; this run is model-zz: enroll into"):
        Gallery(path, "model-zz", 32)
    with pytest.raises(RunError, match="g.db holds 32-d embeddings; this run makes 64-d"):
        Gallery(path, MODEL, 64)
    with Gallery.open(path) as gallery:  # no model given: the gallery's own stamp
        assert (gallery.model_id, gallery.dim) == (MODEL, 32)


def test_open_never_creates_and_a_new_gallery_needs_the_stamp(tmp_path):
    with pytest.raises(RunError, match="no face gallery at .*missing.db"):
        Gallery.open(tmp_path / "missing.db", MODEL, 4)
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(RunError, match="needs the model's id and dimension"):
        Gallery(tmp_path / "new.db")
    with pytest.raises(RunError, match="is a folder"):
        Gallery(tmp_path, MODEL, 4)
    with pytest.raises(RunError, match="the folder .*nowhere does not exist"):
        Gallery(tmp_path / "nowhere" / "g.db", MODEL, 4)


def one_line_run_error(path: Path, query_dim: int = 32) -> str:
    """Open the file and search it: whichever step meets the damage, it must be a one-line RunError."""
    with pytest.raises(RunError) as caught:
        with Gallery.open(path, MODEL, query_dim) as gallery:
            gallery.identify(torch.ones(1, query_dim))
    message = str(caught.value)
    assert "\n" not in message and path.name in message
    return message


def test_a_garbage_file_is_not_a_gallery(tmp_path):
    path = tmp_path / "g.db"
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    assert "g.db is not a cnnlab face gallery (not an SQLite database)" in one_line_run_error(path)


def test_another_apps_sqlite_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE songs (title TEXT)")
    connection.commit()
    connection.close()
    before = path.read_bytes()
    with pytest.raises(RunError, match=r"app.db is not a cnnlab face gallery \(an SQLite database of tables songs"):
        Gallery(path, MODEL, 32)  # create=True must not add our tables to someone else's database
    assert path.read_bytes() == before


def test_a_gallery_of_another_schema_version_is_refused(enrolled):
    path, _ = enrolled
    connection = sqlite3.connect(path)
    connection.execute("UPDATE cnnlab_face_gallery SET value = '99' WHERE key = 'schema_version'")
    connection.commit()
    connection.close()
    assert "schema version 99; this cnnlab reads version 1" in one_line_run_error(path)


@pytest.mark.parametrize("keep", [0.5, 0.05, 100 / 1_200_000])
def test_a_truncated_gallery_is_a_one_line_error(tmp_path, keep):
    path = tmp_path / "g.db"
    rows = unit(np.random.default_rng(0), 2000, 128)  # ~1.2 MB of pages
    with Gallery(path, MODEL, 128) as gallery:
        gallery.enroll_many([f"p{i // 4}" for i in range(len(rows))], torch.from_numpy(rows))
    assert not Path(f"{path}-wal").exists()  # closed cleanly: everything is in the main file
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    assert "face gallery" in one_line_run_error(path, 128)


def test_pages_overwritten_with_garbage_are_a_one_line_error(tmp_path):
    path = tmp_path / "g.db"
    rows = unit(np.random.default_rng(0), 2000, 128)
    with Gallery(path, MODEL, 128) as gallery:
        gallery.enroll_many([f"p{i // 4}" for i in range(len(rows))], torch.from_numpy(rows))
    data = bytearray(path.read_bytes())
    data[40 * 4096 : 60 * 4096] = np.random.default_rng(1).bytes(20 * 4096)
    path.write_bytes(bytes(data))
    one_line_run_error(path, 128)


# -- atomicity and concurrency across processes ------------------------------------------------------------------

KILLED_ENROLL = textwrap.dedent(
    """
    import sys, time, torch
    from cnnlab.tasks.faces import gallery

    original = gallery._embedding_rows

    def rows_then_hang(*args):  # the kill lands inside the INSERT, half of the rows written
        for index, row in enumerate(original(*args)):
            if index == 20_000:
                print("inside the transaction", flush=True)
                time.sleep(600)
            yield row

    gallery._embedding_rows = rows_then_hang
    g = gallery.Gallery(sys.argv[1], "model-a1b2", 128)
    g.enroll("mallory", torch.randn(40_000, 128))
    """
)


def test_a_process_killed_mid_enroll_leaves_the_gallery_as_it_was(tmp_path):
    path = tmp_path / "g.db"
    rng = np.random.default_rng(0)
    with Gallery(path, MODEL, 128) as gallery:
        gallery.enroll("ann", torch.from_numpy(unit(rng, 3, 128)))
        gallery.enroll("bob", torch.from_numpy(unit(rng, 2, 128)))
        queries = torch.from_numpy(unit(rng, 4, 128))
        before_matches = gallery.identify(queries)
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_ENROLL, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.strip() == "inside the transaction", process.stderr.read()
        wal = Path(f"{path}-wal")
        assert wal.exists() and wal.stat().st_size > 2_000_000  # uncommitted rows really reached the file
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    with Gallery.open(path, MODEL, 128) as gallery:
        assert gallery.people() == [("ann", 3), ("bob", 2)]
        assert len(gallery) == 5
        assert gallery.identify(queries) == before_matches
        assert gallery.enroll("carol", torch.from_numpy(unit(rng, 1, 128))) == 1  # and it takes writes again


CONCURRENT_ENROLL = textwrap.dedent(
    """
    import sys, time, torch
    from pathlib import Path
    from cnnlab.tasks.faces.gallery import Gallery

    path, worker, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    while not go.exists():  # start together: both create the file and enroll at the same moment
        time.sleep(0.01)
    with Gallery(path, "model-a1b2", 16) as gallery:
        for person in range(20):
            gallery.enroll(f"{worker}-{person:02d}", torch.randn(2, 16), [f"{worker}/{person}.jpg"] * 2)
    print("done", flush=True)
    """
)


def test_two_processes_enrolling_at_once_lose_nothing(tmp_path):
    path, go = tmp_path / "g.db", tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_ENROLL, str(path), name, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("w0", "w1")
    ]
    time.sleep(0.5)
    go.touch()
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in outputs]
    with Gallery.open(path, MODEL, 16) as gallery:
        people = gallery.people()
    assert people == [(f"{w}-{p:02d}", 2) for w in ("w0", "w1") for p in range(20)]


# -- faiss -------------------------------------------------------------------------------------------------------


def test_faiss_flat_gives_the_exact_matches_and_ivf_finds_noisy_copies(tmp_path):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    rows = unit(rng, 4000, 16)
    names = [f"p{i // 4:04d}" for i in range(len(rows))]
    path = tmp_path / "g.db"
    with Gallery(path, MODEL, 16) as gallery:
        gallery.enroll_many(names, torch.from_numpy(rows))
    picks = rng.choice(len(rows), 50, replace=False)
    queries = torch.from_numpy(rows[picks] + 0.05 * rng.standard_normal((50, 16)).astype(np.float32))
    with Gallery.open(path, MODEL, 16) as exact, Gallery.open(path, MODEL, 16, index="faiss") as flat:
        for template in ("max", "mean"):
            expected = exact.identify(queries, top_k=5, template=template)
            assert_same_matches(flat.identify(queries, top_k=5, template=template), expected)
        flat.enroll("newcomer", queries[:1])  # appended to the built index
        assert flat.identify(queries[:1], top_k=1)[0][0] == ("newcomer", pytest.approx(1.0, abs=1e-5))
    with Gallery.open(path, MODEL, 16, index="faiss-ivf") as ivf:
        ivf.load()
        found = ivf.identify(queries[1:], top_k=5)
    assert all(len(row) == 5 for row in found)
    hits = sum(row[0][0] == names[pick] for row, pick in zip(found, picks[1:]))
    assert hits >= 45
