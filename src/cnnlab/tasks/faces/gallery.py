"""The face gallery: enrolled people and their embeddings in one SQLite file, searched by cosine similarity.

Why SQLite (the standard library's sqlite3): one file a user can copy, no server, and transactions. An enroll
is one `BEGIN IMMEDIATE ... COMMIT`, so a process killed half-way leaves the gallery as it was; the WAL journal
and a busy timeout let two processes enroll at once (the second waits for the first's commit, nothing is lost).
The file is stamped with the model that made its embeddings: two models embed faces in unrelated spaces, so a
gallery refuses a run of any other model.

Search keeps every embedding in one in-memory float32 matrix, loaded once and refreshed when the file changes
(`PRAGMA data_version`; new rows are appended, a removal reloads). One matrix product scores the queries
against the whole gallery and a segment max (`scatter_reduce`) turns embedding scores into person scores.
faiss-cpu is an optional index (`index="faiss"` exact, `"faiss-ivf"` approximate) for galleries where that
product gets slow.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from cnnlab.errors import ConfigError, DataError, RunError

SCHEMA_VERSION = 1
META_TABLE = "cnnlab_face_gallery"
FORMAT = "cnnlab face gallery"
INDEXES = ("exact", "faiss", "faiss-ivf")
TEMPLATES = ("max", "mean")
VECTOR_DTYPE = np.dtype("<f4")  # float32 little-endian, whatever the machine
SCHEMA = f"""
CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL REFERENCES people(id),
    vector BLOB NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    added TEXT NOT NULL
);
CREATE INDEX embeddings_person ON embeddings(person_id);
"""
# AUTOINCREMENT: ids never come back after a removal, so "rows with id > the last one loaded" are the new ones.
LOAD_CHUNK = 65_536  # rows fetched per step when loading: bounds the bytes objects alive beside the matrix
SCORE_CHUNK = 1 << 24  # at most this many (query, embedding) scores at once: 64 MiB of float32
IVF_MIN_PER_LIST = 39  # faiss's own floor of training points per inverted list; below it IVF falls back to flat
# Share of IVF lists probed per query. Measured on random unit 128-d vectors with noisy queries (cosine 0.7 to the
# source; the worst case, no clusters): top-1 right 73-83 % probing 1/16 of the lists, 97-99 % probing 1/4 (100 k
# and 1 M rows); face embeddings cluster by person, which only helps.
IVF_PROBED = 1 / 4


class Gallery:
    """Enrolled people and their embeddings, in one SQLite file stamped with the model that made them.

    Args:
        path: the .db file.
        model_id: fingerprint of the model whose embeddings go in (a new gallery is stamped with it, an existing
            one must carry the same); None takes the gallery's own (for listing and removing without a model).
        dim: embedding dimension, checked the same way.
        create: make the file when it does not exist (needs model_id and dim).
        index: search with the in-memory matrix ("exact"), faiss's IndexFlatIP ("faiss", exact too) or an
            IndexIVFFlat ("faiss-ivf", approximate: probes 1/4 of sqrt(N) lists) for very large galleries.
        timeout: seconds a write waits for another process's transaction before giving up.

    Raises:
        RunError: the file is missing, not an SQLite database, damaged, not a cnnlab face gallery, or was made
            by another model or dimension (one line naming the file).
        ConfigError: an unknown index, or faiss-cpu is not installed for a faiss index.
    """

    def __init__(
        self,
        path: str | Path,
        model_id: str | None = None,
        dim: int | None = None,
        create: bool = True,
        index: str = "exact",
        timeout: float = 30.0,
    ) -> None:
        if index not in INDEXES:
            raise ConfigError(f"gallery index {index!r}: expected one of {', '.join(INDEXES)}")
        self.path, self.index, self.timeout = Path(path), index, timeout
        self._faiss = _import_faiss() if index != "exact" else None
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._reset_cache()
        self._connection = self._connect(create)
        try:
            self._meta = self._open(model_id, dim, create)
        except BaseException:
            self.close()
            raise
        self.model_id: str = self._meta["model_id"]
        self.dim: int = int(self._meta["dim"])
        self.created: str = self._meta["created"]

    @classmethod
    def open(cls, path: str | Path, model_id: str | None = None, dim: int | None = None, **options: Any) -> Gallery:
        """An existing gallery (never creates one); same arguments as the constructor."""
        return cls(path, model_id, dim, create=False, **options)

    # -- opening ---------------------------------------------------------------------------------------------
    def _connect(self, create: bool) -> sqlite3.Connection:
        if self.path.is_dir():
            raise RunError(f"{self.path} is a folder, not a cnnlab face gallery file")
        if not self.path.exists() and not create:
            raise RunError(f"no face gallery at {self.path}: enroll someone to create it")
        if not self.path.parent.is_dir():
            raise RunError(f"cannot create face gallery {self.path}: the folder {self.path.parent} does not exist")
        mode = "rwc" if create else "rw"
        try:
            uri = f"{self.path.resolve().as_uri()}?mode={mode}"
            return sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise RunError(f"cannot open face gallery {self.path}: {error}") from error

    def _open(self, model_id: str | None, dim: int | None, create: bool) -> dict[str, str]:
        with self._database_errors():
            tables = self._tables()
            if not tables and create:
                self._create(model_id, dim)
                tables = self._tables()
            meta = self._read_meta(tables)
            self._check_size()
            self._use_wal()
        self._check_stamp(meta, model_id, dim)
        return meta

    def _tables(self) -> set[str]:
        rows = self._sql("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {name for (name,) in rows} - {"sqlite_sequence"}

    def _create(self, model_id: str | None, dim: int | None) -> None:
        if model_id is None or dim is None:
            raise RunError(f"no face gallery at {self.path}: a new gallery needs the model's id and dimension")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise DataError(f"gallery {self.path}: embedding dimension must be a positive int, got {dim!r}")
        with self._write():
            if self._tables():  # another process created it while this one waited for the lock
                return
            for statement in filter(str.strip, SCHEMA.split(";")):
                self._sql(statement)
            created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            meta = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "model_id": model_id, "dim": dim}
            rows = [(key, str(value)) for key, value in {**meta, "created": created}.items()]
            self._sql(f"INSERT INTO {META_TABLE} (key, value) VALUES (?, ?)", rows, many=True)

    def _read_meta(self, tables: set[str]) -> dict[str, str]:
        if META_TABLE not in tables:
            what = f"an SQLite database of tables {', '.join(sorted(tables))}" if tables else "an empty SQLite file"
            raise RunError(f"{self.path} is not a cnnlab face gallery ({what}, without a {META_TABLE} table)")
        meta = dict(self._sql(f"SELECT key, value FROM {META_TABLE}").fetchall())
        version = meta.get("schema_version")
        if meta.get("format") != FORMAT or not {"people", "embeddings"} <= tables or version is None:
            raise RunError(f"{self.path} is not a cnnlab face gallery (its {META_TABLE} table lacks the stamp)")
        if version != str(SCHEMA_VERSION):
            raise RunError(
                f"{self.path} is a cnnlab face gallery of schema version {version}; "
                f"this cnnlab reads version {SCHEMA_VERSION}"
            )
        if not {"model_id", "dim", "created"} <= meta.keys() or not meta["dim"].isdigit():
            raise RunError(f"{self.path} is a damaged cnnlab face gallery: its model stamp is incomplete")
        return meta

    def _check_size(self) -> None:
        """A file shorter than its header's page count lost its tail (copied half-way, truncated)."""
        pages = self._sql("PRAGMA page_count").fetchone()[0]
        page_size = self._sql("PRAGMA page_size").fetchone()[0]
        wal = Path(f"{self.path}-wal")
        size = self.path.stat().st_size
        if size < pages * page_size and not (wal.exists() and wal.stat().st_size > 0):
            raise RunError(
                f"{self.path} is a damaged cnnlab face gallery: truncated ({size} of {pages * page_size} bytes); "
                "restore it from a backup or enroll into a new gallery"
            )

    def _use_wal(self) -> None:
        """WAL journalling (kept in the file): readers never block the writer, nor the writer them.

        Switching needs the file to itself, and SQLite answers "locked" at once rather than through the busy
        timeout when another process is reading or switching too (two processes creating one gallery): retry.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if self._sql("PRAGMA journal_mode = WAL").fetchone()[0].lower() == "wal":  # a no-op once it is
                    return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error):
                    raise
            if time.monotonic() > deadline:
                raise RunError(f"face gallery {self.path}: cannot switch it to WAL journalling (is the disk local?)")
            time.sleep(0.01)

    def _check_stamp(self, meta: dict[str, str], model_id: str | None, dim: int | None) -> None:
        name = self.path.name
        if model_id is not None and meta["model_id"] != model_id:
            raise RunError(
                f"gallery {name} was made by model {meta['model_id']}; this run is {model_id}: "
                "enroll into a new gallery"
            )
        if dim is not None and int(meta["dim"]) != dim:
            raise RunError(
                f"gallery {name} holds {meta['dim']}-d embeddings; this run makes {dim}-d ones: "
                "enroll into a new gallery"
            )

    # -- database plumbing -----------------------------------------------------------------------------------
    def _sql(self, statement: str, parameters: Any = (), many: bool = False) -> sqlite3.Cursor:
        if self._connection is None:
            raise RunError(f"face gallery {self.path} is closed")
        if many:
            return self._connection.executemany(statement, parameters)
        return self._connection.execute(statement, parameters)

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        """sqlite3's errors as one line naming the file: a damaged or foreign file is the user's to fix."""
        try:
            yield
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise RunError(
                    f"face gallery {self.path} is busy: another process is writing to it (waited up to "
                    f"{self.timeout:g} s); try again"
                ) from error
            raise RunError(f"face gallery {self.path}: {error}") from error
        except sqlite3.DatabaseError as error:
            if "not a database" in str(error):
                raise RunError(f"{self.path} is not a cnnlab face gallery (not an SQLite database)") from error
            raise RunError(
                f"{self.path} is a damaged cnnlab face gallery ({error}): restore it from a backup "
                "or enroll into a new gallery"
            ) from error

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction: all of it commits or none of it does (a killed process rolls back)."""
        self._sql("BEGIN IMMEDIATE")  # takes the write lock now, waiting up to `timeout` for another writer
        try:
            yield
            self._sql("COMMIT")
        except BaseException:
            self._end_transaction()
            raise
        finally:
            self._stale = True  # data_version only moves for other connections' commits

    def _end_transaction(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            self._connection.rollback()

    # -- writing ---------------------------------------------------------------------------------------------
    def enroll(self, name: str, embeddings: torch.Tensor, sources: Sequence[str] | None = None) -> int:
        """Add embeddings of one person (a new name creates the person; an existing one gets them added).

        Args:
            name: the person.
            embeddings: float (N, D) embeddings; L2-normalised on the way in.
            sources: N strings saying where each came from (the image file); empty when None.

        Returns:
            How many embeddings the person has now.

        Raises:
            DataError: an empty name, wrong shape or dimension, a non-finite or zero vector, or a sources list
                of the wrong length.
        """
        name = _check_name(name)
        with self._lock, self._database_errors():
            vectors, sources = self._check_rows(embeddings, sources)
            with self._write():
                self._insert([name] * len(vectors), vectors, sources)
                query = "SELECT count(*) FROM embeddings JOIN people ON people.id = person_id WHERE name = ?"
                return self._sql(query, (name,)).fetchone()[0]

    def enroll_many(self, names: Sequence[str], embeddings: torch.Tensor, sources: Sequence[str] | None = None) -> int:
        """Add many people's embeddings in one transaction (an import): row i belongs to `names[i]`.

        Returns:
            How many embeddings were added.
        """
        names = [_check_name(name) for name in names]
        with self._lock, self._database_errors():
            vectors, sources = self._check_rows(embeddings, sources)
            if len(names) != len(vectors):
                raise DataError(f"{len(names)} names for {len(vectors)} embeddings: give one name per row")
            with self._write():
                self._insert(names, vectors, sources)
        return len(vectors)

    def _check_rows(self, embeddings: torch.Tensor, sources: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
        vectors = self._check_vectors(embeddings, "embeddings")
        sources = [""] * len(vectors) if sources is None else [str(source) for source in sources]
        if len(sources) != len(vectors):
            raise DataError(f"{len(sources)} sources for {len(vectors)} embeddings: give one source per row")
        return vectors.numpy().astype(VECTOR_DTYPE, copy=False), sources

    def _insert(self, names: list[str], vectors: np.ndarray, sources: list[str]) -> None:
        unique = sorted(set(names))
        self._sql("INSERT OR IGNORE INTO people (name) VALUES (?)", [(name,) for name in unique], many=True)
        if len(unique) <= 100:  # an enroll: look up its names; an import: read the whole table once
            marks = ", ".join("?" * len(unique))
            ids = dict(self._sql(f"SELECT name, id FROM people WHERE name IN ({marks})", unique).fetchall())
        else:
            ids = dict(self._sql("SELECT name, id FROM people").fetchall())
        added = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        rows = _embedding_rows([ids[name] for name in names], vectors, sources, added)
        self._sql("INSERT INTO embeddings (person_id, vector, source, added) VALUES (?, ?, ?, ?)", rows, many=True)

    def remove(self, name: str) -> int:
        """Remove a person and all their embeddings.

        Returns:
            How many embeddings were removed.

        Raises:
            DataError: no person of that name (with the closest names enrolled).
        """
        with self._lock, self._database_errors(), self._write():
            row = self._sql("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                names = [name for (name,) in self._sql("SELECT name FROM people").fetchall()]
                raise DataError(_unknown_person(name, names, self.path.name))
            removed = self._sql("DELETE FROM embeddings WHERE person_id = ?", row).rowcount
            self._sql("DELETE FROM people WHERE id = ?", row)
        return removed

    # -- reading ---------------------------------------------------------------------------------------------
    def people(self) -> list[tuple[str, int]]:
        """(name, number of embeddings) of everyone enrolled, by name."""
        query = (
            "SELECT name, count(embeddings.id) FROM people LEFT JOIN embeddings ON person_id = people.id "
            "GROUP BY people.id ORDER BY name"
        )
        with self._lock, self._database_errors():
            return [(name, count) for name, count in self._sql(query).fetchall()]

    def __len__(self) -> int:
        """Number of embeddings (not people) enrolled."""
        with self._lock, self._database_errors():
            return self._sql("SELECT count(*) FROM embeddings").fetchone()[0]

    def identify(self, queries: torch.Tensor, top_k: int = 5, template: str = "max") -> list[list[tuple[str, float]]]:
        """The `top_k` enrolled people closest to each query, best first, with their cosine similarity.

        A person's score is, with `template="max"`, the highest similarity over their embeddings: the nearest
        enrolled photo decides, so a person enrolled with varied photos (glasses, profile, lighting) matches a
        query resembling any one of them. `template="mean"` compares with the normalised mean of their
        embeddings instead (one prototype per person): smoother against one bad enrollment photo, and cheaper
        (people, not embeddings, are scored), but it blurs a person whose photos differ a lot.

        Args:
            queries: float (Q, D) embeddings; L2-normalised here.
            top_k: people per query (fewer when fewer are enrolled).
            template: "max" or "mean", as above.

        Returns:
            For each query, a list of (name, score) pairs; empty lists when no one is enrolled.
        """
        if template not in TEMPLATES:
            raise ConfigError(f"gallery template {template!r}: expected one of {', '.join(TEMPLATES)}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k must be a positive int, got {top_k!r}")
        queries = self._check_vectors(queries, "queries", allow_empty=True)
        with self._lock:
            self._refresh()
            count = min(top_k, len(self._names))
            if count == 0 or len(queries) == 0:
                return [[] for _ in range(len(queries))]
            if self.index == "exact":
                scores, people = self._exact_search(queries, count, template)
            else:
                scores, people = self._faiss_search(queries, count, template)
            names = self._names
        return [[(names[p], s) for s, p in zip(row_s, row_p)] for row_s, row_p in zip(scores, people)]

    def load(self) -> int:
        """Bring the in-memory matrix (and index) up to date now rather than at the first identify.

        Returns:
            Number of embeddings in memory.
        """
        with self._lock:
            self._refresh()
            if self.index != "exact" and len(self._row_person):
                self._faiss_index("max")
            return len(self._row_person)

    # -- the in-memory matrix --------------------------------------------------------------------------------
    def _reset_cache(self) -> None:
        self._matrix = self._buffer = torch.empty(0, 0)
        self._row_person = torch.empty(0, dtype=torch.int64)  # row -> dense person index
        self._names: list[str] = []  # dense person index -> name
        self._dense: dict[int, int] = {}  # people.id -> dense person index
        self._last_id, self._version, self._stale = 0, None, True
        self._templates: torch.Tensor | None = None
        self._faiss_indexes: dict[str, Any] = {}

    def _refresh(self) -> None:
        """Reload what changed since the last search: new rows are appended, anything else reloads it all."""
        with self._database_errors():
            version = self._sql("PRAGMA data_version").fetchone()[0]
            if not self._stale and version == self._version:
                return
            self._sql("BEGIN")  # one snapshot for the counts and the rows
            try:
                total, newer = self._sql(
                    "SELECT count(*), count(CASE WHEN id > ? THEN 1 END) FROM embeddings", (self._last_id,)
                ).fetchone()
                if total - newer != len(self._row_person) or len(self._names) == 0:
                    self._reset_cache()  # a removal (or the first load): reload everything
                    newer = total
                self._append(newer)
            finally:
                self._end_transaction()  # a read transaction: rolling back just ends it
            self._version, self._stale = version, False

    def _append(self, count: int) -> None:
        """Read the `count` rows after the last one loaded straight into the matrix's buffer."""
        used = len(self._row_person)
        self._reserve(used + count)
        ids, person_ids = self._fetch(count, self._buffer[used : used + count].numpy())
        self._matrix = self._buffer[: used + len(ids)]
        if len(ids) == 0:
            return
        new_people = sorted(set(person_ids.tolist()) - self._dense.keys())
        if new_people:  # people ids only grow: the new ones are at the end of the table
            names = dict(self._sql("SELECT id, name FROM people WHERE id >= ?", (new_people[0],)).fetchall())
            for person_id in new_people:
                self._dense[person_id] = len(self._names)
                self._names.append(names[person_id])
        dense = torch.tensor([self._dense[p] for p in person_ids.tolist()], dtype=torch.int64)
        self._row_person = torch.cat([self._row_person, dense])
        self._last_id = int(ids[-1])
        self._templates = None
        self._faiss_indexes.pop("mean", None)  # the means moved; the max index just takes the new rows
        if "max" in self._faiss_indexes:
            self._faiss_indexes["max"].add(self._matrix[used:].numpy())

    def _reserve(self, rows: int) -> None:
        """Room for `rows` rows in the buffer, plus a quarter spare so that the next enrolls need no copy.

        The spare rows cost no memory until written (the allocator maps fresh pages lazily); measured at 1 M
        embeddings, the first search after an enroll took 2.0 s with an exact-size buffer (a 1.5x copy) and
        milliseconds with the spare.
        """
        if len(self._buffer) >= rows and self._buffer.shape[1] == self.dim:
            return
        used = len(self._row_person)
        buffer = torch.empty(rows + rows // 4 + 1024, self.dim)
        if used:
            buffer[:used] = self._buffer[:used]
        self._buffer = buffer

    def _fetch(self, count: int, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ids and person ids of up to `count` rows after the last loaded; their vectors go into `out`."""
        ids = np.empty(count, dtype=np.int64)
        person_ids = np.empty(count, dtype=np.int64)
        cursor = self._sql("SELECT id, person_id, vector FROM embeddings WHERE id > ? ORDER BY id", (self._last_id,))
        row = 0
        while chunk := cursor.fetchmany(LOAD_CHUNK):
            end = min(row + len(chunk), count)  # a snapshot cannot grow, but never write past the arrays
            row_ids, row_people, blobs = zip(*chunk[: end - row])
            ids[row:end], person_ids[row:end] = row_ids, row_people
            out[row:end] = self._decode(b"".join(blobs), end - row)
            row = end
        return ids[:row], person_ids[:row]

    def _decode(self, data: bytes, rows: int) -> np.ndarray:
        if len(data) != rows * self.dim * VECTOR_DTYPE.itemsize:
            raise RunError(f"{self.path} is a damaged cnnlab face gallery: an embedding is not {self.dim} float32")
        return np.frombuffer(data, dtype=VECTOR_DTYPE).reshape(rows, self.dim)

    def _mean_templates(self) -> torch.Tensor:
        if self._templates is None:
            sums = torch.zeros(len(self._names), self.dim).index_add_(0, self._row_person, self._matrix)
            self._templates = torch.nn.functional.normalize(sums, dim=1)
        return self._templates

    def _search_rows(self, template: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows to score and the person of each: every embedding ("max") or one template per person."""
        if template == "mean":
            return self._mean_templates(), torch.arange(len(self._names))
        return self._matrix, self._row_person

    # -- search ----------------------------------------------------------------------------------------------
    def _exact_search(self, queries: torch.Tensor, k: int, template: str) -> tuple[list, list]:
        rows, row_person = self._search_rows(template)
        people = len(self._names)
        step = max(1, SCORE_CHUNK // max(1, len(rows)))
        best_scores, best_people = [], []
        for first in range(0, len(queries), step):
            scores = queries[first : first + step] @ rows.T
            if template == "max":  # segment max: each person's best embedding
                person_scores = scores.new_full((len(scores), people), -math.inf)
                index = row_person.expand(len(scores), -1)
                scores = person_scores.scatter_reduce_(1, index, scores, reduce="amax", include_self=True)
            top = scores.topk(k, dim=1)
            best_scores += top.values.tolist()
            best_people += top.indices.tolist()
        return best_scores, best_people

    def _faiss_search(self, queries: torch.Tensor, k: int, template: str) -> tuple[list, list]:
        """Nearest rows from faiss, grouped by person; asks for more rows until k people are covered."""
        index = self._faiss_index(template)
        row_person = self._search_rows(template)[1].numpy()
        queries = np.ascontiguousarray(queries.numpy())
        want = min(index.ntotal, k if template == "mean" else max(4 * k, 32))
        results: list[list[tuple[int, float]] | None] = [None] * len(queries)
        pending = np.arange(len(queries))
        while len(pending):
            distances, labels = index.search(queries[pending], want)
            short = []
            for query, row_d, row_l in zip(pending, distances, labels):
                found = _group_by_person(row_d, row_l, row_person, k)
                if len(found) < k and want < index.ntotal:
                    short.append(query)
                results[query] = found
            pending, want = np.array(short, dtype=np.int64), min(index.ntotal, want * 4)
        return [[s for _, s in r] for r in results], [[p for p, _ in r] for r in results]

    def _faiss_index(self, template: str) -> Any:
        if template not in self._faiss_indexes:
            rows = np.ascontiguousarray(self._search_rows(template)[0].numpy())
            self._faiss_indexes[template] = _build_faiss(self._faiss, rows, self.index)
        return self._faiss_indexes[template]

    # -- validation ------------------------------------------------------------------------------------------
    def _check_vectors(self, values: torch.Tensor, what: str, allow_empty: bool = False) -> torch.Tensor:
        """float32 (N, dim), finite, L2-normalised (cosine similarity is then a dot product)."""
        tensor = torch.as_tensor(values).detach().cpu()
        if tensor.dim() != 2 or tensor.shape[1] != self.dim:
            raise DataError(
                f"{what} of shape {tuple(tensor.shape)}: gallery {self.path.name} holds (N, {self.dim}) embeddings"
            )
        if len(tensor) == 0 and not allow_empty:
            raise DataError(f"no {what} given: nothing to enroll")
        tensor = tensor.to(torch.float32)
        bad = (~torch.isfinite(tensor).all(dim=1)).nonzero()
        if len(bad):
            raise DataError(f"{what} row {int(bad[0])} is not finite (NaN or infinity)")
        norms = tensor.norm(dim=1)
        zero = (norms == 0).nonzero()
        if len(zero):
            raise DataError(f"{what} row {int(zero[0])} is all zeros: it has no direction to compare")
        return (tensor / norms[:, None]).contiguous()

    # -- lifetime --------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file (idempotent); the gallery cannot be used afterwards."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            self._reset_cache()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Gallery({str(self.path)!r}, model_id={self.model_id!r}, dim={self.dim}, index={self.index!r})"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"a person's name must be a non-empty string, got {name!r}")
    return name.strip()


def _embedding_rows(person_ids: list[int], vectors: np.ndarray, sources: list[str], added: str) -> Iterator[tuple]:
    """Rows for executemany, made one at a time so that a big import never holds all its blobs twice."""
    for person_id, vector, source in zip(person_ids, vectors, sources):
        yield person_id, vector.tobytes(), source, added


def _unknown_person(name: str, names: list[str], gallery: str) -> str:
    if not names:
        return f"no one named {name!r} in gallery {gallery}: it has no one enrolled"
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {' or '.join(repr(n) for n in close)}?" if close else f" ({len(names)} people enrolled)"
    return f"no one named {name!r} in gallery {gallery}{hint}"


def _group_by_person(scores: np.ndarray, rows: np.ndarray, row_person: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The first k distinct people in a best-first list of rows: each person at their best row's score."""
    found: dict[int, float] = {}
    for score, row in zip(scores.tolist(), rows.tolist()):
        if row < 0:  # faiss pads with -1 when its probed lists hold fewer rows
            break
        found.setdefault(int(row_person[row]), score)
        if len(found) == k:
            break
    return list(found.items())


def _import_faiss() -> ModuleType:
    try:
        import faiss
    except ImportError as error:
        raise ConfigError("a faiss gallery index needs faiss-cpu: pip install faiss-cpu") from error
    return faiss


def _build_faiss(faiss: ModuleType, rows: np.ndarray, kind: str) -> Any:
    """IndexFlatIP (exact inner product) or, for "faiss-ivf" with enough rows, an IVF index over sqrt(N) lists.

    IVF probes `IVF_PROBED` of its lists, so that share of the gallery is scanned per query; recall is measured by
    bench/face_gallery.py.
    """
    count, dim = rows.shape
    lists = max(1, round(math.sqrt(count)))
    if kind == "faiss" or count < IVF_MIN_PER_LIST * lists or lists < 16:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(count, min(count, 64 * lists), replace=False)
        index.train(rows[np.sort(sample)])
        index.nprobe = max(1, round(lists * IVF_PROBED))
    index.add(rows)
    return index
