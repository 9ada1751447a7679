"""One stage contract: the README's step-by-step path runs from the command line, each command on
the previous one's output, and every flag the README shows exists in the parser."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from inpars_core.cli import build_parser, main
from tests.conftest import ROOT

README = ROOT / "README.md"
CLI = [sys.executable, "-m", "inpars_core.cli"]
#: Flags whose value is an earlier command's output in the walk-through.
INPUT_FLAGS = ("--index", "--queries", "--run", "--triples", "--model")
#: The arrows of the pipeline, in order.
STAGES = [
    "index",
    "generate",
    "filter",
    "retrieve",
    "triples",
    "train",
    "retrieve",
    "rerank",
    "evaluate",
]


def _code_blocks(section: str) -> list[list[str]]:
    """The lines of every ```bash block of the README section headed ``## <section>``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return [block.splitlines() for block in re.findall(r"```bash\n(.*?)```", body, re.S)]


def walkthrough_commands() -> list[list[str]]:
    """The commands of the README's "Step by step" block, continuation lines joined."""
    (block,) = _code_blocks("Step by step")
    joined = "\n".join(block).replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


def _subparsers() -> dict:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices


def test_walkthrough_is_every_arrow_in_order() -> None:
    commands = walkthrough_commands()
    assert all(argv[0] == "inpars" for argv in commands)
    assert [argv[1] for argv in commands] == STAGES


def test_walkthrough_commands_parse_and_chain() -> None:
    """Every command parses, and every input it names is an earlier command's --out."""
    parser = build_parser()
    made: list[str] = []
    for argv in walkthrough_commands():
        args = parser.parse_args(argv[1:])
        for flag in INPUT_FLAGS:
            value = getattr(args, flag.lstrip("-"), None)
            if flag in argv and value not in ("minilm", "gemma-3-270m"):
                assert value in made, f"{' '.join(argv)}: {flag} {value} is no earlier --out"
        made.append(args.out)
    # the synthetic queries reach triples through filter and a BM25 run of the kept queries
    retrieve = walkthrough_commands()[3]
    assert retrieve[retrieve.index("--queries") + 1] == "walk/kept"


def test_readme_flags_exist_in_the_parser() -> None:
    """Each ``--flag`` on a README synopsis line of ``inpars <command>`` is one of its options."""
    commands = _subparsers()
    sections = [
        "Command line",
        "Experiments: one config, cached stages, variants",
        "Synthetic queries (generation and filtering)",
        "Cross-encoders: encoding, negatives, training, reranking",
        "Step by step",
        "Dense retrieval (bi-encoders)",
        "Dashboard",
        "Why did fine-tuning hurt? `inpars diagnose`",
    ]
    missing, seen = [], 0
    for section in sections:
        for block in _code_blocks(section):
            current = None
            for line in block:
                head = re.match(r"inpars ([a-z-]+)", line)
                if head:
                    current = head.group(1)
                    assert current in commands, f"README names unknown command {current!r}"
                if current is None:
                    continue
                options = commands[current]._option_string_actions
                for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line):
                    seen += 1
                    if flag not in options:
                        missing.append(f"inpars {current} {flag}")
    assert seen > 100 and not missing, missing


def test_retrieve_takes_a_split_or_a_queries_file(tiny_dir: Path, tmp_path: Path, capsys) -> None:
    base = ["retrieve", "--dataset", str(tiny_dir), "--index", str(tmp_path / "index")]
    out = ["--out", str(tmp_path / "run")]
    assert main([*base, "--split", "test", "--queries", "q.jsonl", *out]) == 2
    assert "--split and --queries: give one of them" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main([*base, "--queries", str(empty), *out]) == 2
    assert "expected a queries file, found an empty file" in capsys.readouterr().err
    assert main([*base, "--queries", str(empty), "--max-queries", "2", *out]) == 2
    assert "expected --max-queries only with --split" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.integration  # Lucene, Gemma in process, training and reranking
def test_readme_walkthrough_runs_end_to_end(tmp_path: Path) -> None:
    """The README's step-by-step commands, verbatim, from generate to evaluate."""
    env = {**os.environ, "INPARS_CACHE_DIR": str(tmp_path / "cache")}
    outputs = []
    for argv in walkthrough_commands():
        done = subprocess.run(
            [*CLI, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{shlex.join(argv)}\n{done.stderr[-3000:]}"
        outputs.append(done.stdout)
    walk = tmp_path / "walk"
    kept_file = walk / "kept" / "queries.jsonl"  # the filter's artifact folder
    kept = [json.loads(line) for line in kept_file.read_text().splitlines()]
    run_ids = {
        line.split()[0] for line in (walk / "kept-bm25" / "run.trec").read_text().splitlines()
    }
    assert kept and run_ids == {q["query_id"] for q in kept}
    meta = json.loads((walk / "kept-bm25" / "meta.json").read_text())
    sha = hashlib.sha256(kept_file.read_bytes()).hexdigest()
    assert meta["type"] == "run" and meta["inputs"]["queries"]["sha256"] == sha
    assert meta["config"]["k1"] == 0.9 and meta["config"]["b"] == 0.4
    triples = (walk / "triples" / "triples.jsonl").read_text().splitlines()
    assert {json.loads(t)["query_id"] for t in triples} <= run_ids
    reranked = {
        line.split()[0] for line in (walk / "reranked" / "run.trec").read_text().splitlines()
    }
    assert len(reranked) == 5
    rerank_meta = json.loads((walk / "reranked" / "meta.json").read_text())
    assert rerank_meta["inputs"]["run"]["type"] == "run" and rerank_meta["counts"]["queries"] == 5
    assert (walk / "reranked" / "scores.tsv").is_file()
    scores = json.loads(outputs[-1])
    assert set(scores) == {"nDCG@10", "R@100"} and 0.0 < scores["nDCG@10"] <= 1.0
