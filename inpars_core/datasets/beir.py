"""Read and validate a folder in BEIR layout.

Layout: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``)
and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``, with a header line).
This is also how users bring their own corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from inpars_core.errors import InputFormatError
from inpars_core.records import Document, Qrels, Query

logger = logging.getLogger(__name__)

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"


def _iter_json_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; one clear error per bad line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(
                    path,
                    f"not valid JSON ({exc.msg} at column {exc.colno})",
                    line=number,
                    fix="each line must be one JSON object; repair or delete this line",
                ) from None
            if not isinstance(value, dict):
                raise InputFormatError(
                    path,
                    f"expected a JSON object, found {type(value).__name__}",
                    line=number,
                    fix='each line must be one JSON object such as {"_id": ..., "text": ...}',
                )
            yield number, value


def _required_str(path: Path, number: int, row: dict, key: str, *, allow_empty: bool) -> str:
    if key not in row:
        raise InputFormatError(
            path,
            f"missing (keys present: {', '.join(sorted(row)) or 'none'})",
            line=number,
            field=key,
            fix=f"add a '{key}' field to every line",
        )
    value = row[key]
    if isinstance(value, int | float) and not isinstance(value, bool) and key == "_id":
        value = str(value)
    if not isinstance(value, str):
        raise InputFormatError(
            path,
            f"expected a string, found {type(value).__name__}",
            line=number,
            field=key,
            fix=f"write '{key}' as a JSON string",
        )
    if not allow_empty and not value.strip():
        raise InputFormatError(
            path,
            "is empty",
            line=number,
            field=key,
            fix=f"give every row a non-empty '{key}' or remove the row",
        )
    return value


def read_corpus(path: Path) -> dict[str, Document]:
    """Read ``corpus.jsonl``; ids must be unique and ``text`` present (``title`` optional)."""
    corpus: dict[str, Document] = {}
    first_line: dict[str, int] = {}
    for number, row in _iter_json_objects(path):
        doc_id = _required_str(path, number, row, "_id", allow_empty=False)
        text = _required_str(path, number, row, "text", allow_empty=True)
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise InputFormatError(
                path,
                f"expected a string, found {type(title).__name__}",
                line=number,
                field="title",
                fix="write 'title' as a string",
            )
        if doc_id in corpus:
            raise InputFormatError(
                path,
                f"duplicate document id {doc_id!r} (first seen on line {first_line[doc_id]})",
                line=number,
                field="_id",
                fix="document ids must be unique; drop or rename one",
            )
        first_line[doc_id] = number
        corpus[doc_id] = Document(doc_id=doc_id, title=title, text=text)
    if not corpus:
        raise InputFormatError(path, "holds no documents", fix="add at least one document line")
    return corpus


def read_queries(path: Path) -> dict[str, Query]:
    """Read ``queries.jsonl``; ids must be unique and texts non-empty."""
    queries: dict[str, Query] = {}
    first_line: dict[str, int] = {}
    for number, row in _iter_json_objects(path):
        query_id = _required_str(path, number, row, "_id", allow_empty=False)
        text = _required_str(path, number, row, "text", allow_empty=False)
        if query_id in queries:
            raise InputFormatError(
                path,
                f"duplicate query id {query_id!r} (first seen on line {first_line[query_id]})",
                line=number,
                field="_id",
                fix="query ids must be unique; drop or rename one",
            )
        first_line[query_id] = number
        queries[query_id] = Query(query_id=query_id, text=text)
    return queries


def read_qrels(path: Path) -> Qrels:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``) or a TREC qrels file."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if number == 1 and not parts[-1].lstrip("-").isdigit():
                continue  # header line
            if len(parts) == 3:
                query_id, doc_id, score = parts
            elif len(parts) == 4:  # TREC layout: query_id iteration doc_id relevance
                query_id, _, doc_id, score = parts
            else:
                raise InputFormatError(
                    path,
                    f"expected 3 tab-separated columns (query-id, corpus-id, score), "
                    f"found {len(parts)}",
                    line=number,
                    fix="write one judgement per line as 'query-id<TAB>corpus-id<TAB>score'",
                )
            try:
                relevance = int(score)
            except ValueError:
                raise InputFormatError(
                    path,
                    f"expected an integer relevance, found {score!r}",
                    line=number,
                    field="score",
                    fix="relevance labels are integers such as 0, 1, 2",
                ) from None
            qrels.setdefault(query_id, {})[doc_id] = relevance
    return qrels


@dataclass
class Dataset:
    """A loaded BEIR-layout dataset; qrels are read per split on demand."""

    name: str
    path: Path
    corpus: dict[str, Document]
    queries: dict[str, Query]
    _qrels: dict[str, Qrels] = field(default_factory=dict, repr=False)
    _hash: tuple[tuple, str] | None = field(default=None, repr=False)

    def content_hash(self) -> str:
        """sha256 over the dataset's files (corpus, queries, every qrels split), names and
        bytes: the dataset's identity in stage keys (a changed document changes it)."""
        stat_key = tuple(
            (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in self._content_files()
        )
        if self._hash is None or self._hash[0] != stat_key:
            digest = hashlib.sha256()
            for path in self._content_files():
                digest.update(str(path.relative_to(self.path)).encode() + b"\x00")
                with open(path, "rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(block)
                digest.update(b"\x00")
            self._hash = (stat_key, digest.hexdigest()[:16])
        return self._hash[1]

    def _content_files(self) -> list[Path]:
        qrels = sorted((self.path / QRELS_DIR).glob("*.tsv"))
        return [self.path / CORPUS_FILE, self.path / QUERIES_FILE, *qrels]

    def has_split(self, split: str) -> bool:
        """Whether ``qrels/<split>.tsv`` exists."""
        return (self.path / QRELS_DIR / f"{split}.tsv").is_file()

    def splits(self) -> list[str]:
        """Names of the qrels splits present on disk."""
        return sorted(p.stem for p in (self.path / QRELS_DIR).glob("*.tsv"))

    def qrels(self, split: str) -> Qrels:
        """Judgements of ``split``, validated against the corpus and queries."""
        if split not in self._qrels:
            path = self.path / QRELS_DIR / f"{split}.tsv"
            if not path.is_file():
                raise InputFormatError(
                    path,
                    "not found",
                    fix=f"choose one of the splits on disk: {self.splits()}",
                )
            qrels = read_qrels(path)
            self._warn_unknown_ids(path, qrels)
            self._qrels[split] = qrels
        return self._qrels[split]

    def split_queries(self, split: str) -> dict[str, Query]:
        """The queries judged in ``split`` that have a text, in qrels order."""
        return {q: self.queries[q] for q in self.qrels(split) if q in self.queries}

    def _warn_unknown_ids(self, path: Path, qrels: Qrels) -> None:
        unknown_queries = [q for q in qrels if q not in self.queries]
        unknown_docs = {d for judged in qrels.values() for d in judged if d not in self.corpus}
        if unknown_queries or unknown_docs:
            logger.warning(
                "%s: %d judged queries are not in %s and %d judged documents are not in %s; "
                "they are kept in the qrels but cannot be retrieved",
                path,
                len(unknown_queries),
                QUERIES_FILE,
                len(unknown_docs),
                CORPUS_FILE,
            )


def load_beir_folder(path: Path, name: str | None = None) -> Dataset:
    """Load and validate a BEIR-layout folder."""
    path = Path(path)
    for required in (CORPUS_FILE, QUERIES_FILE):
        if not (path / required).is_file():
            raise InputFormatError(
                path / required,
                "not found",
                fix="a dataset folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv",
            )
    corpus = read_corpus(path / CORPUS_FILE)
    queries = read_queries(path / QUERIES_FILE)
    logger.info("loaded %s: %d documents, %d queries", path, len(corpus), len(queries))
    return Dataset(name=name or path.name, path=path, corpus=corpus, queries=queries)
