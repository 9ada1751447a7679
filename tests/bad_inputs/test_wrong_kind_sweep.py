"""The traceback sweep: every command of ``inpars --help``, every input flag of it, fed a file or
folder of the WRONG kind (a run where queries are expected, a run artifact where an index is, a
binary file, an empty file, an empty folder, a missing path). Each case ends with exit 2 and one
line naming the path (and the flag or the fix) — never a traceback — and leaves the inputs as
they were. The other inputs of each command are valid, so the case exercises the flag under test;
no case gets as far as loading a model or starting a JVM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inpars_core.cli import main
from tests.bad_inputs.tree import snapshot
from tests.conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir

#: The wrong kinds, by name: what each one is in the zoo.
KINDS = {
    "missing": "missing/nothing-here",
    "empty-file": "empty.txt",
    "binary-file": "blob.bin",
    "empty-folder": "empty-folder",
    "run-file": "run.trec",
    "queries-file": "queries.jsonl",
    "run-artifact": "run-artifact",
    "dataset-folder": "tiny",
}
FOLDERS = ("empty-folder", "run-artifact", "dataset-folder")
RUNS = ("run-file", "run-artifact")

TRAIN = ["--objective", "bce"]

#: command, the flag swept, the other (valid) arguments, the kinds that are right for the flag.
TARGETS: list[tuple[str, str, list[str], tuple[str, ...]]] = [
    ("index", "--dataset", [], ("dataset-folder",)),
    ("generate", "--dataset", ["--backend", "openai", "--model", "gpt-4o-mini"],
     ("dataset-folder",)),
    ("filter", "--queries", ["--dataset", "@tiny"], ("queries-file",)),
    ("filter", "--dataset", ["--queries", "@queries.jsonl"], ("dataset-folder",)),
    ("filter", "--index",
     ["--queries", "@queries.jsonl", "--dataset", "@tiny", "--round-trip-k", "3"], ()),
    ("retrieve", "--dataset", ["--index", "@run-artifact", "--split", "test"],
     ("dataset-folder",)),
    ("retrieve", "--index", ["--dataset", "@tiny", "--split", "test"], ()),
    ("retrieve", "--queries", ["--dataset", "@tiny", "--index", "@empty-folder"],
     ("queries-file",)),
    ("triples", "--dataset", ["--run", "@run.trec", "--split", "test"], ("dataset-folder",)),
    ("triples", "--run", ["--dataset", "@tiny", "--split", "test"], RUNS),
    ("triples", "--queries", ["--dataset", "@tiny", "--run", "@run.trec"], ("queries-file",)),
    ("triples", "--add-triples",
     ["--dataset", "@tiny", "--run", "@run.trec", "--split", "test"], ()),
    ("train", "--dataset", [*TRAIN, "--triples", "@triples.jsonl", "--base-model", "minilm"],
     ("dataset-folder",)),
    ("train", "--triples", [*TRAIN, "--dataset", "@tiny", "--base-model", "minilm"], ()),
    ("dense-index", "--dataset", ["--model", "minilm"], ("dataset-folder",)),
    ("rerank", "--dataset", ["--run", "@run.trec", "--model", "minilm"], ("dataset-folder",)),
    ("rerank", "--run", ["--dataset", "@tiny", "--model", "minilm"], RUNS),
    ("fuse", "--runs", [], RUNS),  # beside a good run (below)
    ("evaluate", "--dataset", ["--run", "@run.trec"], ("dataset-folder",)),
    ("evaluate", "--run", ["--dataset", "@tiny"], RUNS),
    ("compare", "--dataset", ["--runs", "@run.trec", "@run-artifact", "--baseline", "@run.trec"],
     ("dataset-folder",)),
    ("compare", "--runs", ["--dataset", "@tiny", "--baseline", "@run.trec"], RUNS),
    ("run", "CONFIG", ["--dry-run"], ()),
    ("dashboard", "--runs-dir", [], (*FOLDERS, "missing")),  # a missing one: the app says so
]  # fmt: skip

#: Model inputs: refused before anything is loaded (no download, no transformers).
MODEL_TARGETS: list[tuple[str, str, list[str]]] = [
    ("rerank", "--model", ["--dataset", "@tiny", "--run", "@run.trec"]),
    ("dense-index", "--model", ["--dataset", "@tiny"]),
    (
        "train",
        "--base-model",
        [*TRAIN, "--dataset", "@tiny", "--triples", "@triples.jsonl"],
    ),
    ("encode", "--model", ["--query", "q", "--doc", "d"]),
]
MODEL_KINDS = ("empty-file", "binary-file", "run-file", "empty-folder", "run-artifact", "missing")


def _cases() -> list:
    cases = []
    for command, flag, rest, right in TARGETS:
        for kind in KINDS:
            if kind not in right:
                cases.append(pytest.param(command, flag, rest, kind, id=f"{command} {flag} {kind}"))
    for command, flag, rest in MODEL_TARGETS:
        for kind in MODEL_KINDS:
            cases.append(pytest.param(command, flag, rest, kind, id=f"{command} {flag} {kind}"))
    return cases


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """One of each kind, read-only for the commands (they write under ``out/`` only)."""
    root = tmp_path_factory.mktemp("zoo")
    write_beir(root / "tiny", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    (root / "empty.txt").write_bytes(b"")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 8)
    (root / "empty-folder").mkdir()
    run = "".join(
        f"q{q} Q0 d{d} {r} {5 - r}.0 bm25\n"
        for q in (1, 2, 3)
        for r, d in enumerate((1, 2, 3, 4, 0), 1)
    )
    (root / "run.trec").write_text(run)
    queries = [
        {"query_id": f"syn-d{d}-s0", "doc_id": f"d{d}", "text": text, "raw_output": text,
         "prompt_id": "inpars", "prompt_hash": "abc", "backend": "llamacpp", "model": "m",
         "seed": 0, "mean_logprob": -0.5}
        for d, text in ((1, "does aspirin reduce heart attacks"), (2, "statins cholesterol"))
    ]  # fmt: skip
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    triple = {
        "query_id": "q1",
        "query_text": "aspirin heart attack",
        "pos_doc_id": "d1",
        "neg_doc_id": "d2",
        "neg_source": "bm25",
        "neg_rank": 2,
        "window": [1, 5],
    }
    (root / "triples.jsonl").write_text(json.dumps(triple) + "\n")
    (root / "run-artifact").mkdir()
    (root / "run-artifact" / "run.trec").write_text(run)
    meta = {"type": "run", "format": "trec", "stage": "retrieve", "config": {}, "inputs": {}}
    (root / "run-artifact" / "meta.json").write_text(json.dumps(meta))
    return root


def _resolve(arg: str, zoo: Path) -> str:
    return str(zoo / arg[1:]) if arg.startswith("@") else arg


@pytest.mark.parametrize(("command", "flag", "rest", "kind"), _cases())
def test_a_wrong_kind_of_input_gets_one_line_and_exit_2(
    command: str,
    flag: str,
    rest: list[str],
    kind: str,
    zoo: Path,
    tmp_path: Path,
    monkeypatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from inpars_core import processes

    started = []
    monkeypatch.setattr(processes, "run_forwarding_signals", lambda *a: started.append(a) or 0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    monkeypatch.chdir(tmp_path)
    wrong = str(zoo / KINDS[kind])
    argv = [command, *(_resolve(a, zoo) for a in rest)]
    argv += [wrong] if flag == "CONFIG" else [flag, wrong]
    if flag == "--runs":  # several runs: the wrong one beside a good one
        argv.append(str(zoo / "run.trec"))
    if command not in ("run", "dashboard", "encode", "compare"):
        argv += ["--out", str(tmp_path / "out")]
    before = snapshot(zoo)
    try:
        code = main(argv)
    except BaseException as exc:  # a traceback: what this test counts
        pytest.fail(f"traceback: {type(exc).__name__}: {exc}")
    out, err = capsys.readouterr()
    assert code == 2, (code, out[-1500:], err[-1500:])
    lines = [line for line in err.splitlines() if ": error: " in line and not line[:4].isdigit()]
    assert len(lines) == 1, err[-3000:]
    line = lines[0]
    assert line.startswith(f"inpars {command}: error: "), line
    assert wrong in line or KINDS[kind] in line, line  # the path is named
    assert not started, "the dashboard started on a file"
    assert snapshot(zoo) == before, "an input was modified"
    assert not (tmp_path / "out").exists()
