"""Inputs every stage resolves the same way: the dataset, query sets, progress callbacks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from inpars_core.datasets.beir import Dataset
from inpars_core.errors import InputFormatError
from inpars_core.records import Query

#: ``progress(name, total)`` returns a callback advanced by the number of items done.
Progress = Callable[[str, int], Callable[[int], None]]


def no_progress(_name: str, _total: int) -> Callable[[int], None]:
    """A progress factory that shows nothing (the library default)."""
    return lambda _n: None


def load_dataset(name_or_dir: str | Path) -> Dataset:
    """The dataset named (BEIR name) or found at a folder, loaded once per process and
    content (a changed corpus file is read again)."""
    from inpars_core.datasets import resolve_dataset

    candidate = Path(name_or_dir).expanduser()
    stamp = _stamp(candidate) if candidate.is_dir() else None
    return _load(str(name_or_dir), stamp, resolve_dataset)


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    )


@functools.lru_cache(maxsize=4)
def _load(name: str, _stamp: object, resolve: Callable[[str], Dataset]) -> Dataset:
    return resolve(name)


def dataset_record(dataset: Dataset, **more: object) -> dict[str, object]:
    """How a stage records its dataset input in meta.json (name, resolved folder, content hash
    and corpus hash: an artifact used with another corpus is refused, see
    :func:`~inpars_core.stages.contract.check_same_corpus`), with the other inputs given as
    keywords."""
    return {
        "dataset": dataset.name,
        "dataset_path": str(dataset.path),
        "dataset_hash": dataset.content_hash(),
        "corpus_sha256": dataset.corpus_hash(),
        **more,
    }


def first_queries(dataset: Dataset, split: str, max_queries: int | None) -> dict[str, Query]:
    """The queries judged in ``split`` (qrels order), the first ``max_queries`` when given."""
    queries = dataset.split_queries(split)
    if max_queries is None:
        return queries
    return dict(list(queries.items())[:max_queries])


def synthetic_queries(path: Path) -> dict[str, Query]:
    """The queries of a file written by ``inpars generate``/``inpars filter``, by query id, in
    file order; an empty file stops the stage (nothing downstream could use its run)."""
    from inpars_core.generation.stage import read_queries

    records = read_queries(path)
    if not records:
        raise InputFormatError(
            path,
            "expected at least one synthetic query, found none",
            fix="generate more queries (--num-docs) or loosen the filters of 'inpars filter'",
        )
    return {r.query_id: Query(r.query_id, r.text) for r in records}
