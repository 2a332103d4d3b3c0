"""The Milvus searcher (`gmi init --searcher milvus --milvus-uri URI`): the spec points in a
Milvus collection, so the nearest-point search scales past one machine's memory.

The URI says which Milvus (pymilvus decides): a local file path ending in `.db` is Milvus Lite
(the embedded engine: one process, a file; what the tests run), `http://HOST:19530` a Milvus
standalone or distributed server (docs/scale.md). Same code and commands on both.

Layout: one collection per registry and packed generation, `gmi_<registry id>_<generation>`,
rows (id = packed row, vec = the point as the ranking core reads it). As with the embedded
index (gmi.search.ann) a generation's committed rows never change, so keeping Milvus in step is
appending the rows committed since (upserts: idempotent when two service replicas do it at
once); a removed model's rows stay and its dead slot is filtered out; a new generation gets a
new collection and the registry's older ones are dropped. Searches ask for strong consistency:
rows upserted before a search are seen by it.

A Milvus that cannot be reached or refuses a request is a SearchEngineError naming the URI:
one line for the CLI, HTTP 503 for the service, never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from gmi.errors import SearchEngineError
from gmi.search.arrays import PackedArrays
from gmi.search.shortlist import Shortlist

BATCH_ROWS = 2048  # rows per upsert
MAX_LIMIT = 16_384  # Milvus's largest top-k
FLUSH_ROWS = 4096  # after adding this many rows at once, flush (seal and index them)
CONNECT_TIMEOUT_S = 10.0
SERVER_SCHEMES = ("http://", "https://", "tcp://", "unix:")
logger = logging.getLogger("gmi")


LITE_FILE = "milvus.db"  # the registry's own Milvus Lite, in its home


def default_uri(home: str | Path) -> str:
    """Milvus Lite beside the registry: what `--searcher milvus` without a URI uses."""
    return str(Path(home) / LITE_FILE)


def collection_prefix(home: str) -> str:
    return "gmi_" + hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:12] + "_"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class MilvusSearcher:
    """Shortlists from a Milvus collection of one registry's points."""

    name = "milvus"
    indexed = True

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._client = None
        self._lock = threading.Lock()
        self._synced: dict[str, int] = {}  # collection -> rows known to be in it

    def _call(self, what: str, action):
        """Run one Milvus request; any failure becomes one line naming the URI."""
        try:
            return action()
        except SearchEngineError:
            raise
        except Exception as exc:  # pymilvus raises MilvusException, grpc and OS errors
            raise SearchEngineError(
                f"Milvus at {self.uri}: {what} failed ({_first_line(exc)})"
            ) from None

    def client(self):
        if self._client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError:
                raise SearchEngineError(
                    "the milvus searcher needs pymilvus (pip install 'pymilvus' "
                    "'milvus-lite' for a .db file URI)"
                ) from None
            what = "connecting"
            if not self.uri.startswith(SERVER_SCHEMES):
                parent = Path(self.uri).expanduser().parent
                if not parent.is_dir():
                    raise SearchEngineError(
                        f"Milvus at {self.uri}: no such folder {parent} for Milvus Lite"
                    )
                # Milvus Lite logs its own traceback when it cannot open the file; the one
                # line below says it instead. One process per file: a second one is refused
                what = "opening Milvus Lite (one process per file: is another gmi using it?)"
                logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
            # pymilvus logs a traceback for every failed request; the error says it in a line
            logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
            self._client = self._call(
                what, lambda: MilvusClient(uri=self.uri, timeout=CONNECT_TIMEOUT_S)
            )
        return self._client

    def collection(self, arrays: PackedArrays) -> str:
        if arrays.origin is None:  # in-memory arrays (the benchmark): a name kept on them
            return arrays.device_copies.setdefault("milvus", "gmi_memory_" + uuid.uuid4().hex)
        home, generation = arrays.origin
        return collection_prefix(home) + generation

    def sync(self, arrays: PackedArrays) -> int:
        """Make the collection hold every committed row of `arrays`; returns its row count."""
        name = self.collection(arrays)
        rows = len(arrays.points)
        with self._lock:
            if self._synced.get(name, -1) >= rows:
                return self._synced[name]
            client = self.client()
            if not self._call("listing collections", lambda: client.has_collection(name)):
                self._create(client, name, arrays.dim)  # created loaded
            elif name not in self._synced:  # made by another process: load it for searching
                self._call("loading the collection", lambda: client.load_collection(name))
                if arrays.origin is not None:  # the registry's older generations are stale
                    prefix = collection_prefix(arrays.origin[0])
                    for old in self._call("listing collections", client.list_collections):
                        if old.startswith(prefix) and old != name:
                            self._call(
                                "dropping a stale collection",
                                lambda o=old: client.drop_collection(o),
                            )
            have = self._count(client, name)
            for start in range(have, rows, BATCH_ROWS):
                end = min(start + BATCH_ROWS, rows)
                block = np.asarray(arrays.points[start:end], dtype=np.float32)
                data = [{"id": start + i, "vec": v} for i, v in enumerate(block.tolist())]
                self._call("adding points", lambda d=data: client.upsert(name, d))
            if rows - have >= FLUSH_ROWS:  # sealed segments get Milvus's index; a growing
                self._call("flushing", lambda: client.flush(name))  # one is scanned
            self._synced[name] = max(have, rows)
            return self._synced[name]

    def _create(self, client, name: str, dim: int) -> None:
        from pymilvus import DataType

        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        index = client.prepare_index_params()
        index.add_index("vec", index_type="AUTOINDEX", metric_type="L2")
        self._call(
            "creating a collection",
            lambda: client.create_collection(
                name, schema=schema, index_params=index, consistency_level="Strong"
            ),
        )

    def _count(self, client, name: str) -> int:
        found = self._call(
            "counting points",
            lambda: client.query(
                name, filter="", output_fields=["count(*)"], consistency_level="Strong"
            ),
        )
        return int(found[0]["count(*)"]) if found else 0

    def shortlist(
        self, arrays: PackedArrays, features: np.ndarray, n: int, estimate: bool = False
    ) -> Shortlist:
        try:
            return self._shortlist(arrays, features, n)
        except SearchEngineError as exc:
            if not self._recoverable(arrays):
                raise
            logger.warning("gmi: %s; rebuilding the registry's Milvus Lite from its index", exc)
            self.rebuild(arrays)
            return self._shortlist(arrays, features, n)

    def _own_lite_file(self, arrays: PackedArrays) -> Path | None:
        """The registry's own Milvus Lite storage (HOME/milvus.db, the default), or None: only
        that one holds nothing but this registry's points, all of them in its packed index."""
        if arrays.origin is None or self.uri.startswith(SERVER_SCHEMES):
            return None
        path = Path(self.uri).expanduser().resolve()
        return path if path == Path(default_uri(Path(arrays.origin[0]).resolve())) else None

    def _recoverable(self, arrays: PackedArrays) -> bool:
        """A damaged own Milvus Lite is rebuilt; one that could not be opened (another
        process holds it) never is."""
        return self._client is not None and self._own_lite_file(arrays) is not None

    def _reset_lite(self, path: Path) -> None:
        """Close the client and delete the damaged Milvus Lite storage: a new one is made
        from the packed index on the next sync."""
        with self._lock:
            with contextlib.suppress(Exception):
                self._client.close()  # type: ignore[union-attr]
            self._client = None
            self._synced.clear()
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _shortlist(self, arrays: PackedArrays, features: np.ndarray, n: int) -> Shortlist:
        count = self.sync(arrays)
        limit = max(1, min(n, count, MAX_LIMIT))
        name = self.collection(arrays)
        hits = self._call(
            "searching",
            lambda: self.client().search(
                name,
                data=np.asarray(features, dtype=np.float32).tolist(),
                limit=limit,
                anns_field="vec",
                output_fields=[],
                search_params={"metric_type": "L2"},
                consistency_level="Strong",
            ),
        )
        ids = np.full((len(features), limit), -1, np.int64)
        d2 = np.full((len(features), limit), np.inf, np.float32)
        for t, row in enumerate(hits):
            for j, hit in enumerate(row[:limit]):
                ids[t, j], d2[t, j] = int(hit["id"]), float(hit["distance"])
        # all there is only if every point came back (an ANN index may return fewer)
        everything = limit >= count and bool((ids >= 0).sum(axis=1).min() >= count)
        return Shortlist.from_neighbours(arrays, ids, d2, exhaustive=everything)

    def status(self, arrays: PackedArrays) -> dict[str, Any]:
        rows = self.sync(arrays)
        return {
            "milvus_uri": self.uri,
            "collection": self.collection(arrays),
            "indexed_rows": rows,
            "problems": self.check(arrays),
        }

    def leftovers(self, home: str | Path, generation: str) -> list[Path]:
        return []  # other generations' collections are dropped by the next sync

    def check(self, arrays: PackedArrays, sample: int = 16) -> list[str]:
        """`gmi check`: the collection holds this generation's rows under their ids."""
        if len(arrays.points) == 0:
            return []
        rows = np.unique(np.linspace(0, len(arrays.points) - 1, sample).astype(int))
        try:
            self.sync(arrays)
            hits = self._call(
                "reading points",
                lambda: self.client().get(
                    self.collection(arrays), ids=rows.tolist(), output_fields=["vec"]
                ),
            )
        except SearchEngineError as exc:
            return [str(exc)]
        stored = {int(h["id"]): np.asarray(h["vec"], np.float32) for h in hits}
        wrong = [
            int(r)
            for r in rows
            if int(r) not in stored
            or not np.allclose(stored[int(r)], np.asarray(arrays.points[r]), rtol=1e-5, atol=1e-6)
        ]
        if wrong:
            return [f"milvus: rows {wrong[:4]} differ from the packed index at {self.uri}"]
        return []

    def rebuild(self, arrays: PackedArrays) -> int:
        """Drop this generation's collection and send every row again. The registry's own
        Milvus Lite, when damaged past dropping a collection, is made anew."""
        name = self.collection(arrays)
        client = self.client()
        try:
            with self._lock:
                if self._call("listing collections", lambda: client.has_collection(name)):
                    self._call("dropping the collection", lambda: client.drop_collection(name))
                self._synced.pop(name, None)
            return self.sync(arrays)
        except SearchEngineError:
            own = self._own_lite_file(arrays)
            if own is None:
                raise
            self._reset_lite(own)
            return self.sync(arrays)


_SEARCHERS: dict[str, MilvusSearcher] = {}
_LOCK = threading.Lock()


def milvus_searcher(uri: str) -> MilvusSearcher:
    """One client per URI per process (connections are costly; the searcher holds no result)."""
    with _LOCK:
        if uri not in _SEARCHERS:
            _SEARCHERS[uri] = MilvusSearcher(uri)
        return _SEARCHERS[uri]


class MilvusBench(MilvusSearcher):
    """benchmarks/ann.py's view: prepare = send every point, size = the Lite file."""

    def prepare(self, arrays: PackedArrays) -> int:
        return self.sync(arrays)

    def size_mb(self, built) -> float:
        path = Path(self.uri)  # Milvus Lite keeps a folder under the file URI's name
        files = [path] if path.is_file() else list(path.rglob("*"))
        return round(sum(f.stat().st_size for f in files if f.is_file()) / 2**20, 1)
