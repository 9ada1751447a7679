"""Reading BEIR folders: SciFact as shipped, and one clear error per kind of bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from inpars_core.datasets import load_beir_folder, resolve_dataset
from inpars_core.errors import InputFormatError, UnknownNameError
from tests.conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir


def test_scifact_counts(scifact) -> None:
    assert len(scifact.corpus) == 5183
    assert len(scifact.queries) == 1109
    assert len(scifact.qrels("test")) == 300
    assert len(scifact.qrels("train")) == 809
    assert scifact.splits() == ["test", "train"]
    assert len(scifact.split_queries("test")) == 300


def test_named_dataset_is_found_under_data_dir(scifact_dir: Path) -> None:
    dataset = resolve_dataset("scifact")
    assert dataset.path == scifact_dir
    assert dataset.name == "scifact"


def test_unknown_name_lists_known_datasets() -> None:
    with pytest.raises(UnknownNameError, match="scifact"):
        resolve_dataset("no-such-dataset")


def _corpus_lines(folder: Path, lines: list[str]) -> None:
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")


def test_malformed_json_names_file_and_line(tiny_dir: Path) -> None:
    good = json.dumps(TINY_CORPUS[0])
    _corpus_lines(tiny_dir, [good, '{"_id": "x", "text": ', good])
    with pytest.raises(InputFormatError, match=r"corpus\.jsonl line 2: not valid JSON") as info:
        load_beir_folder(tiny_dir)
    assert info.value.line == 2
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize("missing", ["_id", "text"])
def test_missing_field_names_line_and_field(tiny_dir: Path, missing: str) -> None:
    row = dict(TINY_CORPUS[1])
    del row[missing]
    _corpus_lines(tiny_dir, [json.dumps(TINY_CORPUS[0]), json.dumps(row)])
    with pytest.raises(InputFormatError, match=rf"line 2: field '{missing}': missing") as info:
        load_beir_folder(tiny_dir)
    assert info.value.field == missing


def test_duplicate_document_id(tiny_dir: Path) -> None:
    _corpus_lines(tiny_dir, [json.dumps(TINY_CORPUS[0]), json.dumps(TINY_CORPUS[0])])
    with pytest.raises(InputFormatError, match=r"line 2: field '_id': duplicate .*line 1"):
        load_beir_folder(tiny_dir)


def test_duplicate_query_id(tmp_path: Path) -> None:
    queries = [*TINY_QUERIES, {"_id": "q1", "text": "again"}]
    folder = write_beir(tmp_path / "d", TINY_CORPUS, queries, TINY_QRELS)
    with pytest.raises(InputFormatError, match=r"queries\.jsonl line 4: field '_id': duplicate"):
        load_beir_folder(folder)


def test_empty_query_text(tmp_path: Path) -> None:
    queries = [*TINY_QUERIES, {"_id": "q9", "text": "  "}]
    folder = write_beir(tmp_path / "d", TINY_CORPUS, queries, TINY_QRELS)
    with pytest.raises(InputFormatError, match=r"line 4: field 'text': is empty"):
        load_beir_folder(folder)


def test_qrels_with_unknown_ids_warn_with_counts(tmp_path: Path, caplog) -> None:
    qrels = {"test": "q1\td1\t1\nqX\td1\t1\nq2\tdX\t1\nq2\tdY\t0\n"}
    dataset = load_beir_folder(write_beir(tmp_path / "d", TINY_CORPUS, TINY_QUERIES, qrels))
    with caplog.at_level(logging.WARNING):
        judged = dataset.qrels("test")
    assert judged["qX"] == {"d1": 1}
    assert "1 judged queries are not in queries.jsonl and 2 judged documents" in caplog.text


def test_bad_qrels_relevance(tmp_path: Path) -> None:
    dataset = load_beir_folder(
        write_beir(tmp_path / "d", TINY_CORPUS, TINY_QUERIES, {"test": "q1\td1\thigh\n"})
    )
    with pytest.raises(InputFormatError, match=r"test\.tsv line 2: field 'score'"):
        dataset.qrels("test")


def test_missing_split_lists_available(tiny_dir: Path) -> None:
    with pytest.raises(InputFormatError, match=r"\['test'\]"):
        load_beir_folder(tiny_dir).qrels("dev")


def test_missing_corpus_file(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match=r"corpus\.jsonl: not found"):
        load_beir_folder(tmp_path)
