"""Inputs are read exactly or refused (issue 12): duplicate run lines, qrels headers and labels,
ids with whitespace, files that are not UTF-8, folders where files are expected (and back),
artifacts made for another dataset, runs of another split's queries, ``--num-docs`` above the
corpus size.

Every case runs the command line on a tiny BEIR folder and checks the exit code, the one error
line (what it names) and that no file outside the command's own output changed. None starts a
JVM or loads a model: each refusal comes before that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from inpars_core.errors import InputFormatError
from tests.bad_inputs.tree import assert_refused, run_cli, snapshot
from tests.conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir

LATIN1 = "Caf\xe9 au lait".encode("latin-1")  # 0xe9: not UTF-8
GOOD_RUN = "q1 Q0 d1 1 5.0 t\nq1 Q0 d2 2 3.0 t\nq2 Q0 d2 1 4.0 t\nq3 Q0 d4 1 2.0 t\n"


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """``tiny/`` (the dataset), ``other/`` (a dataset with another corpus) and a good run."""
    write_beir(tmp_path / "tiny", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    other = [{**d, "text": d["text"] + " (other)"} for d in TINY_CORPUS]
    write_beir(tmp_path / "other", other, TINY_QUERIES, TINY_QRELS)
    (tmp_path / "run.trec").write_text(GOOD_RUN)
    return tmp_path


def _artifact_of(world: Path, dataset: str, kind: str, name: str) -> Path:
    """An artifact folder as ``inpars retrieve`` / ``inpars index`` writes it, made for
    ``world/dataset``."""
    from inpars_core.datasets import load_beir_folder
    from inpars_core.stages.common import dataset_record
    from inpars_core.stages.contract import write_stage_meta

    folder = world / name
    folder.mkdir()
    if kind == "run":
        (folder / "run.trec").write_text(GOOD_RUN)
    inputs = dataset_record(load_beir_folder(world / dataset))
    stage = "retrieve" if kind == "run" else "index"
    write_stage_meta(folder, stage=stage, type=kind, config={}, inputs=inputs)
    return folder


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it under the world folder, the command, what the line says."""

    name: str
    make: Callable[[Path], None]
    args: list[str]
    says: list[str]


def _nothing(_world: Path) -> None:
    pass


EVALUATE = ["evaluate", "--dataset", "tiny", "--split", "test"]
RERANK = ["rerank", "--dataset", "tiny", "--model", "minilm", "--out", "out"]

CASES = [
    # --- run files -----------------------------------------------------------------------
    Case(
        "run-duplicate-pair",
        lambda w: _write(w / "dup.trec", GOOD_RUN + "q1 Q0 d1 3 1.0 t\n"),
        [*EVALUATE, "--run", "dup.trec"],
        ["dup.trec line 5", "field 'doc_id'", "line 1 (score 5.0)", "line 5 (score 1.0)", "Fix"],
    ),
    Case(
        "run-not-utf8",
        lambda w: _write(w / "bad.trec", GOOD_RUN.encode() + b"q2 Q0 " + LATIN1 + b" 2 1 t\n"),
        [*EVALUATE, "--run", "bad.trec"],
        ["bad.trec line 5", "UTF-8", "0xe9", "Fix: convert"],
    ),
    Case(
        "run-data-is-a-folder",
        lambda w: (w / "art" / "run.trec").mkdir(parents=True),
        [*EVALUATE, "--run", "art"],
        ["run.trec", "found a folder", "Fix"],
    ),
    # --- qrels ---------------------------------------------------------------------------
    Case(
        "qrels-conflicting-labels",
        lambda w: _write(
            w / "tiny/qrels/test.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq1\td1\t0\n",
        ),
        [*EVALUATE, "--run", "run.trec"],
        ["test.tsv line 4", "field 'score'", "1 on line 2, 0 on line 4", "Fix"],
    ),
    Case(
        "qrels-non-integer-relevance-first-line",
        lambda w: _write(w / "tiny/qrels/test.tsv", "q1\td1\t0.5\nq2\td2\t1\n"),
        [*EVALUATE, "--run", "run.trec"],
        ["test.tsv line 1", "field 'score'", "integer relevance", "'0.5'", "Fix"],
    ),
    Case(
        "qrels-id-with-space",
        lambda w: _write(w / "tiny/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td 1\t1\n"),
        [*EVALUATE, "--run", "run.trec"],
        ["test.tsv line 2", "field 'corpus-id'", "whitespace", "Fix"],
    ),
    Case(
        "qrels-not-utf8",
        lambda w: _write(
            w / "tiny/qrels/test.tsv", b"query-id\tcorpus-id\tscore\nq1\t" + LATIN1 + b"\t1\n"
        ),
        [*EVALUATE, "--run", "run.trec"],
        ["test.tsv line 2", "UTF-8", "Fix"],
    ),
    Case(
        "qrels-file-is-a-folder",
        lambda w: ((w / "tiny/qrels/test.tsv").unlink(), (w / "tiny/qrels/test.tsv").mkdir()),
        [*EVALUATE, "--run", "run.trec"],
        ["test.tsv", "found a folder", "Fix"],
    ),
    # --- the dataset folder --------------------------------------------------------------
    Case(
        "corpus-id-with-space",
        lambda w: _write(w / "tiny/corpus.jsonl", '{"_id": "d 1", "text": "x"}\n'),
        [*EVALUATE, "--run", "run.trec"],
        ["corpus.jsonl line 1", "field '_id'", "'d 1'", "whitespace", "Fix"],
    ),
    Case(
        "query-id-with-space",
        lambda w: _write(
            w / "tiny/queries.jsonl", '{"_id": "q1", "text": "a"}\n{"_id": "q\\t2", "text": "b"}\n'
        ),
        [*EVALUATE, "--run", "run.trec"],
        ["queries.jsonl line 2", "field '_id'", "whitespace", "Fix"],
    ),
    Case(
        "corpus-not-utf8",
        lambda w: _write(w / "tiny/corpus.jsonl", b'{"_id": "d1", "text": "' + LATIN1 + b'"}\n'),
        [*EVALUATE, "--run", "run.trec"],
        ["corpus.jsonl line 1", "UTF-8", "0xe9", "Fix"],
    ),
    Case(
        "queries-file-is-a-folder",
        lambda w: ((w / "tiny/queries.jsonl").unlink(), (w / "tiny/queries.jsonl").mkdir()),
        [*EVALUATE, "--run", "run.trec"],
        ["queries.jsonl", "found a folder", "Fix"],
    ),
    Case(
        "dataset-is-a-file",
        _nothing,
        ["evaluate", "--dataset", "run.trec", "--run", "run.trec"],
        ["run.trec", "expected a BEIR-layout dataset folder", "found a file", "Fix"],
    ),
    Case(
        "qrels-folder-is-a-file",
        lambda w: (
            [p.unlink() for p in (w / "tiny/qrels").iterdir()],
            (w / "tiny/qrels").rmdir(),
            _write(w / "tiny/qrels", "q1\td1\t1\n"),
        ),
        [*EVALUATE, "--run", "run.trec"],
        ["qrels", "expected a folder", "found a file", "Fix"],
    ),
    # --- queries files, --index, --model -------------------------------------------------
    Case(
        "queries-file-not-utf8",
        lambda w: _write(
            w / "q.jsonl", b'{"query_id": "s1", "doc_id": "d1", "text": "' + LATIN1 + b'"}\n'
        ),
        [
            "retrieve",
            "--dataset",
            "tiny",
            "--index",
            "nowhere",
            "--queries",
            "q.jsonl",
            "--out",
            "out",
        ],
        ["q.jsonl line 1", "UTF-8", "Fix"],
    ),
    Case(
        "index-is-a-file",
        _nothing,
        ["retrieve", "--dataset", "tiny", "--index", "run.trec", "--out", "out"],
        ["run.trec", "expected an index folder for --index, found a file", "Fix"],
    ),
    Case(
        "model-is-a-file",
        _nothing,
        ["rerank", "--dataset", "tiny", "--run", "run.trec", "--model", "run.trec", "--out", "out"],
        ["run.trec", "expected a model folder for --model, found a file", "Fix"],
    ),
    # --- artifacts made for another dataset, runs of other queries -----------------------
    Case(
        "index-of-another-dataset",
        lambda w: _artifact_of(w, "other", "index", "other-index"),
        ["retrieve", "--dataset", "tiny", "--index", "other-index", "--out", "out"],
        ["other-index", "--index", "made for 'other'", "dataset 'tiny'", "Fix"],
    ),
    Case(
        "rerank-run-of-another-dataset",
        lambda w: _artifact_of(w, "other", "run", "other-run"),
        [*RERANK, "--run", "other-run"],
        ["other-run", "--run", "made for 'other'", "Fix"],
    ),
    Case(
        "evaluate-run-of-another-dataset",
        lambda w: _artifact_of(w, "other", "run", "other-run"),
        [*EVALUATE, "--run", "other-run"],
        ["other-run", "--run", "made for 'other'", "Fix"],
    ),
    Case(
        "rerank-run-of-other-queries",
        lambda w: _write(w / "synthetic.trec", "s1 Q0 d1 1 5.0 t\ns2 Q0 d2 1 4.0 t\n"),
        [*RERANK, "--run", "synthetic.trec"],
        ["synthetic.trec", "field 'query_id'", "split 'test'", "2 of its 2 queries", "'s1'", "Fix"],
    ),
    Case(
        "evaluate-run-of-other-queries",
        lambda w: _write(w / "synthetic.trec", "s1 Q0 d1 1 5.0 t\n"),
        [*EVALUATE, "--run", "synthetic.trec"],
        ["synthetic.trec", "field 'query_id'", "none of its 1 queries", "Fix"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_in_one_line(world: Path, case: Case) -> None:
    case.make(world)
    assert_refused(case.args, world, says=case.says, tree=world)
    assert not (world / "out").exists()


def test_qrels_without_header_keep_their_first_judgement(world: Path) -> None:
    """A header-less qrels file whose first relevance is ``1.0`` loses no line (the header is
    recognised by its names): q1 stays judged, so a run missing q1's document scores P@1 2/3
    (before: q1's judgement was taken for a header and dropped, P@1 1.0 over q2 and q3)."""
    _write(world / "tiny/qrels/test.tsv", "q1\td1\t1.0\nq2\td2\t1\nq3\td4\t1\n")
    _write(world / "miss.trec", "q1 Q0 d2 1 5.0 t\nq2 Q0 d2 1 4.0 t\nq3 Q0 d4 1 2.0 t\n")
    before = snapshot(world)
    outcome = run_cli([*EVALUATE, "--run", "miss.trec", "--measures", "P@1", "--json"], world)
    assert outcome.code == 0, outcome.stderr[-2000:]
    assert json.loads(outcome.stdout) == {"P@1": pytest.approx(2 / 3)}
    assert snapshot(world) == before


def test_num_docs_above_the_corpus_says_the_real_number(world: Path) -> None:
    """--num-docs 50 on a five-document corpus: a warning with the real number, and the plan
    counts five documents."""
    before = snapshot(world)
    outcome = run_cli(
        ["generate", "--dataset", "tiny", "--num-docs", "50", "--dry-run", "--out", "gen"], world
    )
    assert outcome.code == 0, outcome.stderr[-2000:]
    assert "WARNING" in outcome.stderr and "--num-docs 50" in outcome.stderr
    assert "only 5 documents" in outcome.stderr
    assert "dry run: 5 documents" in outcome.stdout
    assert snapshot(world) == before


def test_generate_meta_counts_the_documents_sampled(tiny_dir: Path, tmp_path: Path) -> None:
    """The generate artifact of --num-docs 50 on five documents counts 5 and notes why (a
    loopback OpenAI-compatible server answers)."""
    from inpars_core.stages import generate
    from tests.test_generate_filter_stages import FakeCompletions

    template = tmp_path / "t.txt"
    template.write_text("Document: {document}\nQuery:")
    server = FakeCompletions()
    try:
        config = generate.Config(
            backend="openai",
            api="completions",
            model="fake-model",
            base_url=f"http://127.0.0.1:{server.port}/v1",
            prompt=str(template),
            num_docs=50,
            logprobs=False,
            concurrency=1,
        )
        out = tmp_path / "gen"
        out.mkdir()
        artifact = generate.run(config, generate.Inputs(dataset=str(tiny_dir)), out)
    finally:
        server.stop()
    assert artifact.counts["documents"] == 5 and artifact.counts["queries"] == 5
    assert [n.code for n in artifact.notes] == ["fewer-documents"]


def test_a_run_with_a_document_twice_is_never_written(tmp_path: Path) -> None:
    """The writer refuses a ranking listing a document twice (rerank cannot write one)."""
    from inpars_core.records import ScoredDoc
    from inpars_core.runs import write_trec_run

    run = {"q1": [ScoredDoc("q1", "d1", 2.0), ScoredDoc("q1", "d1", 1.0)]}
    with pytest.raises(ValueError, match="twice"):
        write_trec_run(run, tmp_path / "run.trec")
    assert not (tmp_path / "run.trec").exists()


def test_triples_not_utf8_name_the_line(tmp_path: Path) -> None:
    from inpars_core.negatives import read_triples

    path = tmp_path / "triples.jsonl"
    path.write_bytes(b'{"query": "' + LATIN1 + b'"}\n')
    with pytest.raises(InputFormatError, match=r"triples\.jsonl line 1: expected UTF-8"):
        read_triples(path)
