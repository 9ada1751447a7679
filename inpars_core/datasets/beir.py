"""Read and validate a folder in BEIR layout.

Layout: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``)
and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``, with a header line).
This is also how users bring their own corpus.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from inpars_core.errors import InputFormatError
from inpars_core.records import Document, Qrels, Query
from inpars_core.textio import check_file, read_lines

logger = logging.getLogger(__name__)

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"


#: The header line of a BEIR qrels file, as BEIR writes it (compared case-insensitively, with
#: ``_`` read as ``-``).
QRELS_HEADER = ("query-id", "corpus-id", "score")
_LAYOUT_FIX = "a dataset folder needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv"


def _iter_json_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; one clear error per bad line."""
    for number, line in read_lines(path, f"a {path.name}", _LAYOUT_FIX):
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
    if key == "_id":
        check_id(path, number, key, value)
    return value


def check_id(path: Path, number: int, field: str, value: str) -> None:
    """Refuse an id holding whitespace: run and qrels files are whitespace-separated, so such
    an id could be written but never read back."""
    if len(value.split()) != 1 or value.strip() != value:
        raise InputFormatError(
            path,
            f"expected an id without whitespace, found {value!r}",
            line=number,
            field=field,
            fix="ids are written into whitespace-separated run files; replace the spaces "
            "(e.g. with '_') here and wherever the id is used",
        )


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


def _is_qrels_header(parts: list[str]) -> bool:
    """Whether a first line is the BEIR header (``query-id corpus-id score``), by its names."""
    names = tuple(p.lower().replace("_", "-") for p in parts)
    return names == QRELS_HEADER or names == ("query-id", "q0", "corpus-id", "score")


def _relevance(path: Path, number: int, text: str) -> int:
    """The integer relevance label written ``text`` (``1`` or ``1.0``); anything else is an
    error naming the line and the field."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value):
        raise InputFormatError(
            path,
            f"expected an integer relevance, found {text!r}",
            line=number,
            field="score",
            fix="relevance labels are integers such as 0, 1, 2",
        )
    return int(value)


def read_qrels(path: Path) -> Qrels:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``) or a TREC qrels file.

    The header is recognised by its names, so a file without one loses no judgement. Lines
    holding a tab are split on tabs (an id with a space is refused, not mistaken for another
    layout); others on whitespace (TREC: ``query_id iteration doc_id relevance``). Relevance
    must be an integer (``1.0`` reads as 1); two different labels for one (query, document)
    pair are an error naming both lines.
    """
    path = Path(path)
    qrels: Qrels = {}
    where: dict[tuple[str, str], tuple[int, int]] = {}
    fix = "write one judgement per line as 'query-id<TAB>corpus-id<TAB>score'"
    for number, line in read_lines(path, "a qrels", fix):
        if not line.strip():
            continue
        tabbed = "\t" in line
        parts = [p.strip() for p in line.split("\t")] if tabbed else line.split()
        if number == 1 and _is_qrels_header(parts):
            continue
        if len(parts) == 3:
            query_id, doc_id, score = parts
            names = ("query-id", "corpus-id")
        elif len(parts) == 4:  # TREC layout: query_id iteration doc_id relevance
            query_id, _, doc_id, score = parts
            names = ("query-id", "corpus-id")
        else:
            raise InputFormatError(
                path,
                f"expected 3 tab-separated columns (query-id, corpus-id, score), "
                f"found {len(parts)}",
                line=number,
                fix=fix,
            )
        for name, value in zip(names, (query_id, doc_id), strict=True):
            if not value:
                raise InputFormatError(path, "is empty", line=number, field=name, fix=fix)
            if tabbed:
                check_id(path, number, name, value)
        relevance = _relevance(path, number, score)
        pair = (query_id, doc_id)
        if pair in where and where[pair][1] != relevance:
            first, label = where[pair]
            raise InputFormatError(
                path,
                f"query {query_id!r} and document {doc_id!r} are judged twice with different "
                f"labels: {label} on line {first}, {relevance} on line {number}",
                line=number,
                field="score",
                fix="keep one judgement per (query, document): delete the wrong line",
            )
        where.setdefault(pair, (number, relevance))
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
    _hashes: dict[tuple, str] = field(default_factory=dict, repr=False)

    def content_hash(self) -> str:
        """sha256 over the dataset's files (corpus, queries, every qrels split), names and
        bytes: the dataset's identity in stage keys (a changed document changes it)."""
        return self._files_hash(self._content_files())

    def corpus_hash(self) -> str:
        """sha256 (16 hex digits) over ``corpus.jsonl``: the identity of what an index or a run
        retrieves from, recorded in their meta.json (a run made on another corpus is refused)."""
        return self._files_hash([self.path / CORPUS_FILE])

    def _files_hash(self, files: list[Path]) -> str:
        """sha256 over ``files`` (relative names and bytes), cached while their sizes and
        modification times are unchanged."""
        stat_key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        if stat_key not in self._hashes:
            digest = hashlib.sha256()
            for path in files:
                digest.update(str(path.relative_to(self.path)).encode() + b"\x00")
                with open(path, "rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 20), b""):
                        digest.update(block)
                digest.update(b"\x00")
            self._hashes[stat_key] = digest.hexdigest()[:16]
        return self._hashes[stat_key]

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
            check_file(path, "a qrels", f"choose one of the splits on disk: {self.splits()}")
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
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        raise InputFormatError(
            path, f"expected a BEIR-layout dataset folder, found {found}", fix=_LAYOUT_FIX
        )
    for required in (CORPUS_FILE, QUERIES_FILE):
        check_file(path / required, f"a {required}", _LAYOUT_FIX)
    qrels_dir = path / QRELS_DIR
    if qrels_dir.exists() and not qrels_dir.is_dir():
        raise InputFormatError(
            qrels_dir, "expected a folder of <split>.tsv files, found a file", fix=_LAYOUT_FIX
        )
    corpus = read_corpus(path / CORPUS_FILE)
    queries = read_queries(path / QUERIES_FILE)
    logger.info("loaded %s: %d documents, %d queries", path, len(corpus), len(queries))
    return Dataset(name=name or path.name, path=path, corpus=corpus, queries=queries)
