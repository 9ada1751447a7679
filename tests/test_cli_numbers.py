"""The command line refuses bad numbers, test-split dev sets and a guard teacher that is the
student, with one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from inpars_core.cli import build_parser, main
from inpars_core.records import ScoredDoc
from inpars_core.runs import write_trec_run
from tests.conftest import TINY_CORPUS, TINY_QUERIES, write_beir

DATA = ["--dataset", "scifact"]
RERANK = ["rerank", *DATA, "--run", "r", "--model", "m", "--out", "o"]
TRAIN = [
    "train",
    *DATA,
    "--triples",
    "t",
    "--base-model",
    "minilm",
    "--objective",
    "bce",
    "--out",
    "o",
]
TRAIN_DENSE = ["train", *DATA, "--family", "bi-encoder", "--triples", "t", "--base-model", "m"]
TRAIN_DENSE += ["--objective", "mnrl", "--out", "o"]
TRIPLES = ["triples", *DATA, "--run", "r", "--out", "o"]


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        ([*RERANK, "--depth", "0"], "--depth"),
        ([*RERANK, "--depth", "ten"], "--depth"),
        ([*RERANK, "--batch-size", "-4"], "--batch-size"),
        ([*RERANK, "--max-length", "0"], "--max-length"),
        ([*RERANK, "--chunk-pairs", "0"], "--chunk-pairs"),
        (["retrieve", *DATA, "--index", "i", "--out", "o", "--k", "0"], "--k"),
        (["retrieve", *DATA, "--index", "i", "--out", "o", "--b", "1.5"], "--b"),
        (["retrieve", *DATA, "--index", "i", "--out", "o", "--threads", "0"], "--threads"),
        ([*TRAIN, "--lr", "0"], "--lr"),
        ([*TRAIN, "--lr", "nan"], "--lr"),
        ([*TRAIN, "--steps", "0"], "--steps"),
        ([*TRAIN, "--epochs", "-1"], "--epochs"),
        ([*TRAIN, "--batch-size", "0"], "--batch-size"),
        ([*TRAIN, "--warmup-ratio", "1"], "--warmup-ratio"),
        ([*TRAIN, "--weight-decay", "-0.1"], "--weight-decay"),
        ([*TRAIN, "--eval-every", "0"], "--eval-every"),
        ([*TRAIN, "--dev-depth", "0"], "--dev-depth"),
        ([*TRAIN, "--dev-max-queries", "0"], "--dev-max-queries"),
        ([*TRAIN, "--dev-bm25-weight", "2"], "--dev-bm25-weight"),
        ([*TRAIN, "--seed", "-1"], "--seed"),
        ([*TRAIN_DENSE, "--lr=-1e-5"], "--lr"),
        ([*TRAIN_DENSE, "--max-length", "0"], "--max-length"),
        ([*TRIPLES, "--negatives", "0"], "--negatives"),
        ([*TRIPLES, "--random-negatives", "-1"], "--random-negatives"),
        ([*TRIPLES, "--window", "5:2"], "--window"),
        ([*TRIPLES, "--window", "0:10"], "--window"),
        ([*TRIPLES, "--window", "1-10"], "--window"),
        ([*TRIPLES, "--false-negative-margin", "inf"], "--false-negative-margin"),
        (
            ["retrieve", *DATA, "--index", "i", "--retriever", "dense", "--out", "o", "--k", "0"],
            "--k",
        ),
        (["dense-index", *DATA, "--model", "m", "--out", "o", "--batch-size", "0"], "--batch-size"),
        (["fuse", "--runs", "a", "b", "--out", "o", "--depth", "0"], "--depth"),
        (["fuse", "--runs", "a", "b", "--out", "o", "--rrf-k", "-1"], "--rrf-k"),
        (["fuse", "--runs", "a", "b", "--out", "o", "--weight", "1.5"], "--weight"),
        (["evaluate", *DATA, "--run", "r", "--max-queries", "0"], "--max-queries"),
        (["filter", "--queries", "q", "--out", "o", "--top-fraction", "1.5"], "--top-fraction"),
        (["filter", "--queries", "q", "--out", "o", "--top-k", "0"], "--top-k"),
        (["encode", "--model", "m", "--query", "q", "--doc", "d", "--max-length", "0"], "--max"),
        (
            ["generate", *DATA, "--backend", "hf", "--model", "m", "--out", "o", "--num-docs", "0"],
            "--num-docs",
        ),
        (["dashboard", "--port", "0"], "--port"),
    ],
)
def test_a_bad_number_is_one_line_and_exit_code_2(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line_error(capsys, main(argv))
    assert line.startswith(f"inpars {argv[0]}: error: argument {flag}")
    assert "expected " in line and "got " in line


def test_help_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rerank", "--help"]) == 0
    assert "--depth" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["fuse", "--runs", "a", "b", "--out", "o", "--method", "interpolate"],
            "expected --weight",
        ),
        (["fuse", "--runs", "a", "b", "--out", "o", "--weight", "0.5"], "--weight only with"),
        (["evaluate", *DATA, "--run", "r", "--measures", "nDCG@x"], "measure 'nDCG@x'"),
        (["retrieve", *DATA, "--index", "i", "--out", "o", "--retriever", "faiss"], "'faiss'"),
        ([*RERANK, "--family", "sparse"], "argument --family: invalid choice: 'sparse'"),
    ],
)
def test_a_bad_combination_is_one_line_and_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line_error(capsys, main(argv))
    assert line.startswith(f"inpars {argv[0]}: error: ") and message in line


def test_the_dense_command_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    """Dense retrieval is ``retrieve --retriever dense``; dense reranking ``rerank --family
    bi-encoder``."""
    line = _one_line_error(capsys, main(["dense", *DATA, "--index", "i", "--out", "o"]))
    assert "invalid choice: 'dense'" in line


def test_dev_flags_never_default_to_the_test_split() -> None:
    from inpars_core.options import from_args
    from inpars_core.stages import train

    for argv in (TRAIN, TRAIN_DENSE):
        config = from_args(train.Config, build_parser().parse_args(argv))
        assert config.dev_split == "train" and config.eval_split == "test"
        assert config.keep == "best" and config.dev_bm25_weight == 0.0


@pytest.mark.parametrize("command", [TRAIN, TRAIN_DENSE])
def test_a_dev_query_of_the_evaluated_split_stops_the_command(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qrels = {"test": "q1\td1\t1\nq2\td2\t1\n", "train": "q3\td4\t1\n"}
    data = write_beir(tmp_path / "tiny", TINY_CORPUS, TINY_QUERIES, qrels)
    run = {
        q: [ScoredDoc(q, d, 1.0 - i / 10) for i, d in enumerate(["d1", "d2"])]
        for q in ("q1", "q2", "q3")
    }
    write_trec_run(run, tmp_path / "dev.run")
    argv = [a if a != "scifact" else str(data) for a in command]
    argv += ["--dev-run", str(tmp_path / "dev.run"), "--dev-split", "test"]
    line = _one_line_error(capsys, main(argv))
    assert line.startswith(f"inpars {command[0]}: error: 2 of 2 dev queries (--dev-split test)")
    assert "evaluated split 'test'" in line and "Fix: " in line


@pytest.mark.integration
def test_triples_mined_with_a_guard_teacher_cannot_train_that_teacher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    import json

    from inpars_core.training import teacher_fingerprint

    data = write_beir(tmp_path / "tiny", TINY_CORPUS, TINY_QUERIES, {"train": "q1\td1\t1\n"})
    run = {"q1": [ScoredDoc("q1", d, 1.0 - i / 10) for i, d in enumerate(["d2", "d3", "d1"])]}
    write_trec_run(run, tmp_path / "train.run")
    triples = tmp_path / "triples"
    mine = [
        "triples",
        "--dataset",
        str(data),
        "--split",
        "train",
        "--run",
        str(tmp_path / "train.run"),
    ]
    mine += ["--negatives", "2", "--window", "1:3", "--teacher", "minilm"]
    mine += ["--false-negative-margin=-100", "--teacher-max-length", "32", "--out", str(triples)]
    assert main(mine) == 0
    assert "false negatives dropped by minilm" in capsys.readouterr().out
    rows = [json.loads(line) for line in (triples / "triples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {r["teacher_fingerprint"] for r in rows} == {
        teacher_fingerprint("minilm")
    }
    assert all(isinstance(r["teacher_neg_score"], float) for r in rows)

    train = ["train", "--dataset", str(data), "--triples", str(triples), "--base-model", "minilm"]
    train += ["--objective", "bce", "--max-length", "32", "--out", str(tmp_path / "model")]
    line = _one_line_error(capsys, main(train))
    assert line.startswith("inpars train: error: triples: expected triples mined with a teacher")
    assert not (tmp_path / "model").exists()
