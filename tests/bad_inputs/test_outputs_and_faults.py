"""Never destroy, one writer per experiment, faults (issue 12).

Each case asserts the exit code, the one error line (what is named in it) and that nothing
outside the command's own output changed.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.bad_inputs.tree import CLI, assert_refused, run_cli, snapshot
from tests.conftest import ROOT, TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir
from tests.llm_servers import document_key, free_port

RUN_LINES = "q1 Q0 d1 1 2.0 bm25\nq1 Q0 d2 2 1.0 bm25\nq2 Q0 d2 1 2.0 bm25\nq3 Q0 d4 1 2.0 bm25\n"
QUERY_ROWS = [
    {"query_id": f"s{i}", "doc_id": d["_id"], "text": f"what about {d['title'].lower()} now",
     "raw_output": "x", "prompt_id": "p", "prompt_hash": "h", "backend": "openai",
     "model": "m", "seed": 0}
    for i, d in enumerate(TINY_CORPUS)
]  # fmt: skip


def _jsonl(rows: list[dict], *, last_newline: bool = True) -> str:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    return text if last_newline else text[:-1]


@pytest.fixture
def work(tiny_dir: Path) -> Path:
    """A folder holding the tiny dataset and one input file of each kind."""
    root = tiny_dir.parent
    (root / "run.trec").write_text(RUN_LINES)
    (root / "queries.jsonl").write_text(_jsonl(QUERY_ROWS))
    triples = [{"query": "aspirin", "positive": "d1", "negative": "d2"}]
    (root / "triples.jsonl").write_text(_jsonl(triples))
    (root / "index").mkdir()
    write_beir(root / "uniq", TINY_CORPUS[:4], TINY_QUERIES, TINY_QRELS)  # 4 distinct documents
    return root


def _commands(work: Path) -> dict[str, list[str]]:
    """Every command with --out, with inputs good enough to reach its output check."""
    tiny, run, queries = str(work / "tiny"), str(work / "run.trec"), str(work / "queries.jsonl")
    return {
        "index": ["index", "--dataset", tiny],
        "generate": ["generate", "--dataset", tiny, "--backend", "openai", "--model", "m",
                     "--base-url", "http://127.0.0.1:9/v1", "--num-docs", "2"],
        "filter": ["filter", "--queries", queries, "--dataset", tiny],
        "retrieve": ["retrieve", "--dataset", tiny, "--index", str(work / "index")],
        "triples": ["triples", "--dataset", tiny, "--run", run, "--queries", queries],
        "train": ["train", "--dataset", tiny, "--triples", str(work / "triples.jsonl"),
                  "--base-model", "minilm", "--objective", "bce"],
        "dense-index": ["dense-index", "--dataset", tiny, "--model", "minilm"],
        "rerank": ["rerank", "--dataset", tiny, "--run", run, "--model", "minilm"],
        "fuse": ["fuse", "--runs", run, run],
        "evaluate": ["evaluate", "--dataset", tiny, "--run", run],
        "compare": ["compare", "--dataset", tiny, "--runs", run, "--baseline", run],
    }  # fmt: skip


COMMANDS = [
    "index", "generate", "filter", "retrieve", "triples", "train", "dense-index", "rerank",
    "fuse", "evaluate", "compare",
]  # fmt: skip


# ------------------------------------------------------------------------- never destroy


@pytest.mark.parametrize("kind", ["foreign folder", "file"])
@pytest.mark.parametrize("name", COMMANDS)
def test_out_naming_something_we_did_not_write_is_refused(work: Path, name: str, kind: str):
    """--out onto a user's folder (no InPars Lab meta.json) or file: refused, nothing deleted.
    (Old: ``evaluate``, ``fuse`` and ``compare`` deleted the folder and exited 0.)"""
    out = work / "mine"
    if kind == "file":
        out.write_text("my notes\n")
    else:
        out.mkdir()
        (out / "thesis.tex").write_text("three years of work\n")
    found = "a file" if kind == "file" else "a folder InPars Lab did not write"
    assert_refused(
        [*_commands(work)[name], "--out", out],
        work,
        says=[f"inpars {name}: error: {out}", found, "name a new folder for --out"],
        tree=work,
    )


@pytest.mark.parametrize("name", ["evaluate", "fuse", "compare"])
def test_out_naming_another_kind_of_artifact_is_refused(work: Path, name: str):
    """A queries artifact is not replaced by an evaluation, a run or a comparison."""
    out = work / "queries-artifact"
    out.mkdir()
    (out / "queries.jsonl").write_text(_jsonl(QUERY_ROWS))
    (out / "meta.json").write_text(json.dumps({"type": "queries", "stage": "generate"}))
    assert_refused(
        [*_commands(work)[name], "--out", out],
        work,
        says=[str(out), "found a queries artifact", "name a new folder"],
        tree=work,
    )


@pytest.mark.parametrize("name", ["evaluate", "fuse", "compare"])
def test_out_naming_our_own_artifact_is_replaced(work: Path, name: str):
    """Replacing a previous artifact of the same type stays possible (and atomic)."""
    out = work / "result"
    args = [*_commands(work)[name], "--out", out]
    first = run_cli(args, work)
    assert first.code == 0, first.stderr[-2000:]
    before = snapshot(work, ignore=[out])
    again = run_cli(args, work)
    assert again.code == 0, again.stderr[-2000:]
    assert snapshot(work, ignore=[out]) == before
    assert json.loads((out / "meta.json").read_text())["type"] in {
        "evaluation",
        "run",
        "comparison",
    }
    assert not list(work.glob(".result.*")), "no work folder left behind"


@pytest.mark.parametrize("torn", ["complete record", "cut record"])
def test_filter_never_modifies_its_input_queries(work: Path, torn: str):
    """A queries file whose last line lacks its newline is read, never truncated. (Old: the
    input lost its last line, a complete record, and the record was dropped.)"""
    source = work / "queries.jsonl"
    text = _jsonl(QUERY_ROWS, last_newline=False)
    if torn == "cut record":
        text = text[: -len(json.dumps(QUERY_ROWS[-1])) // 2]
    source.write_text(text)
    out = work / "kept"
    before = snapshot(work, ignore=[out])
    args = ["filter", "--queries", source, "--dataset", work / "tiny", "--min-words", "1"]
    done = run_cli([*args, "--top-fraction", "1.0", "--no-progress", "--out", out], work)
    assert done.code == 0, done.stderr[-2000:]
    assert snapshot(work, ignore=[out]) == before, "the input was modified"
    assert source.read_text() == text
    meta = json.loads((out / "meta.json").read_text())
    expected = len(QUERY_ROWS) if torn == "complete record" else len(QUERY_ROWS) - 1
    assert meta["counts"]["queries"] == expected
    if torn == "cut record":
        assert "incomplete last line" in done.stderr


def test_generation_repairs_only_a_torn_line_it_appends_to(tmp_path: Path):
    """The generation stage (the appender) cuts a final line that does not parse, and keeps a
    complete final record that only lacks its newline."""
    from inpars_core.generation.stage import QueryFile

    rows = [{**QUERY_ROWS[0], "query_id": f"q{i}", "doc_id": f"d{i}"} for i in range(3)]
    complete = tmp_path / "complete.jsonl"
    complete.write_text(_jsonl(rows, last_newline=False))
    assert len(QueryFile(complete, repair=True).records) == 3
    assert complete.read_text() == _jsonl(rows)  # only the newline was added
    torn = tmp_path / "torn.jsonl"
    torn.write_text(_jsonl(rows) + '{"query_id": "q3", "doc')
    assert len(QueryFile(torn).records) == 3 and torn.read_text().endswith('"doc')  # reader
    assert len(QueryFile(torn, repair=True).records) == 3
    assert torn.read_text() == _jsonl(rows)


# ------------------------------------------------------------------------- names stay inside


def _config(tmp_path: Path, experiment: str, dataset: str, extra: str = "") -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(
        f"[experiment]\nname = {json.dumps(experiment)}\n[dataset]\nname = {json.dumps(dataset)}"
        f"\n{extra}"
    )
    return path


@pytest.mark.parametrize("name", ["../escaped", "/tmp/absolute", "a/b", "..", ".hidden", ""])
def test_experiment_name_cannot_leave_the_runs_dir(work: Path, name: str):
    """(Old: ``../escaped`` wrote runs/../escaped, outside the runs directory.)"""
    config = _config(work, name, str(work / "tiny"))
    for extra in (["--dry-run"], []):
        assert_refused(
            ["run", config, "--runs-dir", work / "runs", *extra],
            work,
            says=["experiment.name", repr(name), "letters, digits", "Fix:"],
            tree=work,
        )


def test_dataset_name_cannot_leave_the_data_dir(work: Path):
    """A dataset *name* is one folder of $INPARS_DATA_DIR. (Old: ``../tiny`` loaded a folder
    beside the data dir.)"""
    data, cwd = work / "data", work / "elsewhere" / "inner"
    data.mkdir()
    cwd.mkdir(parents=True)  # ../tiny from here is no folder; from the data dir it is work/tiny
    env = {**os.environ, "INPARS_DATA_DIR": str(data)}
    assert_refused(
        ["evaluate", "--dataset", "../tiny", "--run", work / "run.trec"],
        cwd,
        says=["../tiny", "not a dataset name", "letters, digits"],
        tree=work,
        env=env,
    )
    config = _config(work, "fine", "../tiny")
    assert_refused(
        ["run", config, "--dry-run"],
        cwd,
        says=["dataset.name", "'../tiny'", "letters, digits"],
        tree=work,
        env=env,
    )


# ------------------------------------------------------------------------- one writer


_HOLDER = """
import sys, time
from pathlib import Path
from inpars_core.experiments.lock import experiment_lock
with experiment_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_run_of_an_experiment_is_refused_naming_the_holder(work: Path):
    """(Old: both runs went ahead, paid twice, and left a generate artifact whose meta.json
    disagreed with its file.)"""
    config = _config(work, "locked", str(work / "tiny"))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(work / "runs" / "locked")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert_refused(
            ["run", config, "--runs-dir", work / "runs"],
            work,
            says=[str(work / "runs" / "locked"), f"pid {holder.pid}", socket.gethostname()],
            tree=work,
        )
        assert time.monotonic() - started < 30  # at once: no waiting on the holder
    finally:
        holder.kill()
        holder.wait()


def test_lock_is_released_on_exit_and_a_stale_one_taken_over(tmp_path: Path):
    from inpars_core.experiments.lock import ExperimentLockedError, experiment_lock

    root = tmp_path / "runs" / "exp"
    with experiment_lock(root) as path:
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with (
            pytest.raises(ExperimentLockedError, match=f"pid {os.getpid()}"),
            experiment_lock(root),
        ):
            pass
    assert not path.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    path.write_text(json.dumps({"pid": int(dead), "host": socket.gethostname(), "started": 0}))
    with experiment_lock(root):  # a killed run's lock file: taken over
        assert json.loads(path.read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("kind", ["a file", "not writable"])
def test_runs_dir_that_cannot_be_written_is_refused(work: Path, kind: str):
    """(Old: a NotADirectoryError / PermissionError traceback.) ``/sys`` refuses new folders
    even to root, so the unwritable case runs here too."""
    runs = work / "runs-file"
    runs.write_text("not a folder\n")
    if kind == "not writable":
        runs = Path("/sys/inpars-lab-runs")
        if not Path("/sys").is_dir():
            pytest.skip("no /sys")
    config = _config(work, "exp", str(work / "tiny"))
    assert_refused(
        ["run", config, "--runs-dir", runs],
        work,
        says=[str(runs / "exp"), "cannot create or write", "Fix: give --runs-dir a folder"],
        tree=work,
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
@pytest.mark.parametrize("mode", [0o555, 0o000])
def test_read_only_or_unreadable_runs_dir_is_refused(work: Path, mode: int):
    runs = work / "runs"
    runs.mkdir()
    config = _config(work, "exp", str(work / "tiny"))
    runs.chmod(mode)
    try:
        assert_refused(
            ["run", config, "--runs-dir", runs], work, says=[str(runs), "Fix:"], tree=work
        )
    finally:
        runs.chmod(0o755)


# ------------------------------------------------------------------------- faults


#: Words of every tiny document: each synthetic query retrieves the whole corpus (negatives).
ALL_WORDS = "aspirin statins vitamin coffee heart"


class ScriptedServer:
    """A loopback OpenAI-compatible Completions server: ``answer(key, attempt)`` returns
    ``(status, headers)`` for an error, or None to answer with a query. Records when each
    request came."""

    def __init__(self, answer=lambda key, attempt: None, delay: float = 0.0) -> None:
        self.times: dict[str, list[float]] = {}
        lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                key = document_key(body)
                with lock:
                    server.times.setdefault(key, []).append(time.monotonic())
                    attempt = len(server.times[key])
                error = answer(key, attempt)
                if error is not None:
                    status, headers = error
                    payload = json.dumps({"error": {"message": "busy", "type": "test"}}).encode()
                else:
                    time.sleep(delay)
                    status, headers = 200, {}
                    words = " ".join(key.split()[1:4])
                    payload = json.dumps(
                        {"id": "c", "object": "text_completion", "created": 0, "model": "m",
                         "choices": [{"text": f" what about {words} {ALL_WORDS}", "index": 0,
                                      "logprobs": None, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 4,
                                   "total_tokens": 14}}
                    ).encode()  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def stop(self) -> None:
        self.server.shutdown()


def _generate(work: Path, base_url: str, out: Path, *extra: str) -> list[str]:
    template = work / "t.txt"
    template.write_text("Document: {document}\nQuery:")
    return ["generate", "--dataset", work / "uniq", "--backend", "openai", "--api",
            "completions", "--model", "fake-model", "--base-url", base_url, "--prompt",
            template, "--num-docs", "3", "--no-logprobs", "--concurrency", "1",
            "--no-progress", *extra, "--out", out]  # fmt: skip


def test_refused_connection_fails_fast_naming_the_url(work: Path):
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    (work / "t.txt").write_text("Document: {document}\nQuery:")
    out = work / "q"
    before = snapshot(work, ignore=[out, work / ".q.partial"])  # its own output (resumable)
    started = time.monotonic()
    done = run_cli(_generate(work, base_url, out), work)
    assert done.code == 2, done.stderr[-3000:]
    line = done.error_line()
    assert "connection refused" in line and base_url in line, line
    assert snapshot(work, ignore=[out, work / ".q.partial"]) == before
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "status,headers",
    [(429, {"Retry-After": "2"}), (503, {}), (500, {})],
    ids=["429 Retry-After", "503", "500"],
)
def test_busy_server_is_retried_with_backoff(work: Path, status: int, headers: dict):
    """429 / 5xx are retried (429 after the Retry-After it asks for); each document is then
    answered once and written once."""
    server = ScriptedServer(lambda key, attempt: (status, headers) if attempt == 1 else None)
    out = work / "q"
    try:
        done = run_cli(_generate(work, server.base_url, out), work)
    finally:
        server.stop()
    assert done.code == 0, done.stderr[-3000:]
    assert [len(t) for t in server.times.values()] == [2, 2, 2]
    waits = [t[1] - t[0] for t in server.times.values()]
    if "Retry-After" in headers:
        assert min(waits) >= 1.9, waits
    rows = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    assert len(rows) == 3 == len({r["doc_id"] for r in rows})


def _price_table_models() -> list[str]:
    from inpars_core.generation.pricing import DEFAULT_PRICES

    return sorted(DEFAULT_PRICES)


@pytest.mark.parametrize("model", _price_table_models())
def test_dry_run_estimates_every_priced_model_offline(work: Path, tmp_path: Path, model: str):
    """No download is attempted (the network is blocked through a dead proxy and an empty
    tiktoken cache); an encoding not bundled is approximated and said so. (Old: gpt-4o and
    gpt-4.1 models ended in a requests ConnectionError traceback.)"""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    dead = "http://127.0.0.1:9"
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache), "HTTPS_PROXY": dead,
           "HTTP_PROXY": dead, "https_proxy": dead, "http_proxy": dead,
           "NO_PROXY": "127.0.0.1,localhost", "OPENAI_API_KEY": "sk-test"}  # fmt: skip
    args = ["generate", "--dataset", work / "tiny", "--backend", "openai", "--model", model,
            "--num-docs", "3", "--max-cost", "5", "--dry-run", "--out", work / "q"]  # fmt: skip
    before = snapshot(work, ignore=[cache])
    done = run_cli(args, work, env)
    assert done.code == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "US$" in done.stdout
    if model.startswith(("gpt-4o", "gpt-4.1")):
        assert "approximate: o200k_base is not available offline" in done.stdout
    else:
        assert "approximate" not in done.stdout
    assert snapshot(work, ignore=[cache]) == before


# ------------------------------------------------------------------------- two real runs

RUN_CONFIG = """
[experiment]
name = "twice"
[dataset]
name = "{tiny}"
train_split = "none"
[bm25]
k = 10
[generator]
backend = "openai"
api = "completions"
model = "fake-model"
base_url = "{base_url}"
prompt = "{template}"
num_docs = 4
logprobs = false
concurrency = 1
[filters]
min_words = 1
near_duplicate_jaccard = 1.0
[negatives]
count = 1
window = [1, 4]
[base_reranker]
source = "hf"
model = "minilm"
[finetune]
objective = "bce"
max_steps = 1
batch_size = 2
max_length = 32
dev = "none"
[rerank]
depths = [4]
max_length = 32
[dense]
enabled = false
"""


@pytest.mark.integration
@pytest.mark.parametrize("second_after", ["0.5 s", "generation started"])
def test_two_runs_of_one_experiment_pay_once(work: Path, second_after: str):
    """Two ``inpars run`` of one config: the second is refused at once naming the first's pid;
    the first completes; every document was requested exactly once and the generate artifact
    is consistent (meta.json counts = lines in the file)."""
    server = ScriptedServer(delay=0.5)
    template = work / "t.txt"
    template.write_text("Document: {document}\nQuery:")
    config = work / "twice.toml"
    config.write_text(
        RUN_CONFIG.format(tiny=work / "uniq", base_url=server.base_url, template=template)
    )
    runs = work / "runs"
    argv = [*CLI, "run", str(config), "--runs-dir", str(runs)]
    try:
        first = subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if second_after == "0.5 s":
            time.sleep(0.5)
        else:
            deadline = time.monotonic() + 300
            while not server.times and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.times, "generation never started"
        second = run_cli(["run", config, "--runs-dir", runs], work)
        _, err = first.communicate(timeout=900)
    finally:
        server.stop()
    assert second.code == 2, second.stderr[-3000:]
    assert f"pid {first.pid}" in second.error_line()
    assert first.returncode == 0, err.decode()[-3000:]
    assert sorted(len(t) for t in server.times.values()) == [1] * 4
    (generated,) = [p for p in (runs / "twice").rglob("queries.jsonl") if "generate" in str(p)]
    lines = generated.read_text().splitlines()
    meta = json.loads((generated.parent / "meta.json").read_text())
    assert len(lines) == len({json.loads(line)["doc_id"] for line in lines}) == 4
    assert meta["counts"]["queries"] == len(lines)


# ------------------------------------------------------------------------- kill -9 in training


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_triples(path: Path, count: int = 16) -> None:
    ids = [d["_id"] for d in TINY_CORPUS]
    rows = [
        {"query_id": f"s{i}", "query_text": f"query {i} about {TINY_CORPUS[i % 5]['title']}",
         "pos_doc_id": ids[i % 5], "neg_doc_id": ids[(i + 2) % 5], "neg_source": "random"}
        for i in range(count)
    ]  # fmt: skip
    path.write_text(_jsonl(rows))


def _kill_once_step_2_is_evaluated(args: list, out: Path, cwd: Path) -> None:
    """Start ``inpars ARGS --out OUT`` and kill -9 it once step 2's evaluation is logged (it
    runs after step 2's checkpoint is on disk): the staging folder holds that checkpoint."""
    staging = out.with_name(f".{out.name}.partial") / "._trainer.staging"
    first = subprocess.Popen([*CLI, *map(str, args), "--out", str(out)], cwd=cwd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        evaluated = staging / "eval_log.jsonl"
        while time.monotonic() < deadline and first.poll() is None:
            if evaluated.is_file() and '"step": 2' in evaluated.read_text():
                break
            time.sleep(0.1)
        first.kill()  # SIGKILL
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    assert not out.exists() and (staging / "_trainer" / "checkpoint-2").is_dir()


@pytest.mark.integration
@pytest.mark.slow
def test_training_killed_after_a_checkpoint_resumes_from_it(work: Path):
    """kill -9 once the step-2 checkpoint is written, rerun: training goes on from step 2 (the
    logs hold every step once) and ends where an uninterrupted run ends, within tolerance.
    (Old: the rerun started again at step 1.)

    Tolerances: the rerun restores the weights, optimizer, schedule and RNG (dropout) state from
    the checkpoint and runs the same planned batches, so its losses, parameter drift and final
    weights equal the uninterrupted run's (bit for bit on the machine that wrote this test).
    rel 1e-4 on the losses and drift, and 1e-6 on the weights (a twentieth of one update at lr
    2e-5), leave room for another summation order only: a rerun whose weights were not restored
    from the checkpoint (its drift starts again from 0) or that skipped or repeated an update
    fails them. (Old: 0.02 on the losses and 1e-3 on the weights, more than all six updates
    move a weight, let such a rerun pass.)"""
    from safetensors.torch import load_file

    _write_triples(work / "triples.jsonl")
    args = ["train", "--dataset", work / "tiny", "--triples", work / "triples.jsonl",
            "--base-model", "minilm", "--objective", "bce", "--steps", "6", "--batch-size", "2",
            "--eval-every", "2", "--max-length", "24", "--seed", "3", "--no-progress"]  # fmt: skip
    whole = run_cli([*args, "--out", work / "whole"], work)
    assert whole.code == 0, whole.stderr[-3000:]

    out = work / "killed"
    _kill_once_step_2_is_evaluated(args, out, work)

    again = run_cli([*args, "--out", out], work)
    assert again.code == 0, again.stderr[-3000:]
    assert "resuming training from" in again.stderr and "(step 2 of 6)" in again.stderr
    steps = _read_jsonl(out / "train_log.jsonl")
    reference = _read_jsonl(work / "whole" / "train_log.jsonl")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in steps[:2]] == [r["loss"] for r in reference[:2]]
    for name in ("loss", "param_drift"):
        assert [r[name] for r in steps] == pytest.approx([r[name] for r in reference], rel=1e-4)
    meta = json.loads((out / "meta.json").read_text())
    assert any("resumed from the checkpoint of step 2" in n["text"] for n in meta["notes"])
    assert meta["counts"]["steps"] == 6
    (mine,) = (out / "model").glob("*.safetensors")
    (theirs,) = (work / "whole" / "model").glob("*.safetensors")
    a, b = load_file(mine), load_file(theirs)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    assert not (work / ".killed.partial").exists()
    assert not list(out.rglob("checkpoint-*")) and not (out / "resume.txt").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_bi_encoder_training_killed_after_a_checkpoint_resumes_from_it(work: Path):
    """The same for a bi-encoder (``--family bi-encoder``): kill -9 once step 2 is evaluated,
    rerun: it goes on from step 2's checkpoint, every step is logged once, the losses are the
    uninterrupted run's, and model/ is the best model kept on disk before the kill (step 0: the
    tiny dev set is solved by the starting model). (Old: the rerun started again at step 1.)

    Tolerance: the rerun restores the weights, optimizer, schedule and RNG state from the
    checkpoint and draws the same seeded batches, so its losses equal the uninterrupted run's
    (bit for bit on the machine that wrote this test); rel 1e-4 leaves room for a different
    floating-point summation order, while another batch or dropout mask moves these losses by
    several percent."""
    _write_triples(work / "triples.jsonl")
    args = ["train", "--family", "bi-encoder", "--objective", "mnrl", "--dataset", work / "tiny",
            "--triples", work / "triples.jsonl", "--base-model", "minilm", "--steps", "6",
            "--batch-size", "2", "--eval-every", "2", "--max-length", "24", "--seed", "3",
            "--dev-run", work / "run.trec", "--dev-split", "test", "--eval-split", "train",
            "--dev-depth", "10", "--no-progress"]  # fmt: skip
    whole = run_cli([*args, "--out", work / "whole"], work)
    assert whole.code == 0, whole.stderr[-3000:]

    out = work / "killed"
    _kill_once_step_2_is_evaluated(args, out, work)
    assert (work / ".killed.partial" / "._trainer.staging" / "kept-0").is_dir()  # the best

    again = run_cli([*args, "--out", out], work)
    assert again.code == 0, again.stderr[-3000:]
    assert "resuming training from" in again.stderr and "(step 2 of 6)" in again.stderr
    steps = _read_jsonl(out / "train_log.jsonl")
    reference = _read_jsonl(work / "whole" / "train_log.jsonl")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in steps] == pytest.approx([r["loss"] for r in reference], rel=1e-4)
    assert [r["lr"] for r in steps] == pytest.approx([r["lr"] for r in reference], rel=1e-9)
    evals = _read_jsonl(out / "eval_log.jsonl")
    assert [e["step"] for e in evals] == [0, 2, 4, 6]
    meta = json.loads((out / "meta.json").read_text())
    theirs = json.loads((work / "whole" / "meta.json").read_text())
    assert any("resumed from the checkpoint of step 2" in n["text"] for n in meta["notes"])
    assert meta["counts"]["steps"] == 6
    assert meta["results"]["kept_step"] == theirs["results"]["kept_step"]
    kept = meta["results"]["kept_weights_sha256"]
    assert kept == theirs["results"]["kept_weights_sha256"] == evals[0]["weights_sha256"]
    assert not (work / ".killed.partial").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (work / "whole").iterdir()
    )
    assert not list(out.rglob("checkpoint-*")) and not list(out.rglob("kept-*"))


# ------------------------------------------------------------- kill -9 during a long stage


def _big_work(work: Path, documents: int, queries: int) -> Path:
    """A BEIR folder of ``documents`` distinct documents, a queries JSONL of ``queries`` rows
    written from them and a BM25-like run (each query, its source and two others): inputs large
    enough that a stage is still running when it is killed."""
    words = ["aspirin", "statins", "coffee", "vitamin", "heart", "cholesterol", "winter",
             "rhythm", "risk", "adults"]  # fmt: skip
    corpus = [
        {"_id": f"d{i}", "title": f"Doc {i}",
         "text": " ".join(words[(i * k) % len(words)] for k in range(1, 40)) + f" item{i}"}
        for i in range(documents)
    ]  # fmt: skip
    write_beir(work / "big", corpus, TINY_QUERIES, {"test": "q1\td1\t1\n"})
    rows = [
        {"query_id": f"s{i}", "doc_id": f"d{i % documents}",
         "text": f"what about {words[i % 10]} {words[(i // 10) % 10]} case {i} now",
         "raw_output": "x", "prompt_id": "p", "prompt_hash": "h", "backend": "openai",
         "model": "m", "seed": 0}
        for i in range(queries)
    ]  # fmt: skip
    (work / "big-queries.jsonl").write_text(_jsonl(rows))
    run = "".join(
        f"s{i} Q0 d{(i + j) % documents} {j + 1} {10.0 - j} bm25\n"
        for i in range(queries)
        for j in range(3)
    )
    (work / "big-run.trec").write_text(run)
    return work


def _kill_mid_run(args: list, out: Path, cwd: Path, env: dict | None = None) -> None:
    """Start ``inpars ARGS --out OUT``, SIGKILL it once its ``.<out>.partial`` folder exists
    (plus a moment, so the stage is at work), and check it was still running then and that
    ``out`` was not published."""
    partial = out.with_name(f".{out.name}.partial")
    command = [*CLI, *map(str, args), "--out", str(out)]
    first = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None and not partial.exists():
            time.sleep(0.02)
        time.sleep(0.05)
        still_running = first.poll() is None
        first.kill()  # SIGKILL
        _, err = first.communicate()
    finally:
        if first.poll() is None:
            first.kill()
    assert still_running, (
        f"the command ended before the kill (rc {first.returncode}): {err[-2000:]}"
    )
    assert first.returncode == -9
    assert partial.is_dir(), "the kill landed before the stage started"
    assert not out.exists(), "a killed command published its output"


def _files(folder: Path) -> dict[str, bytes]:
    """relative path -> bytes of every file under ``folder`` (meta.json apart)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "meta.json"
    }


def _assert_same_artifact(out: Path, whole: Path) -> None:
    """``out`` holds what an uninterrupted run wrote: the same files, bytes and counts, no
    duplicated line, and no partial folder is left beside it."""
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == sorted(
        p.relative_to(whole) for p in whole.rglob("*")
    ), "the rerun's artifact holds other files than an uninterrupted run's"
    assert _files(out) == _files(whole)
    mine, theirs = (json.loads((f / "meta.json").read_text()) for f in (out, whole))
    assert mine["counts"] == theirs["counts"] and mine["type"] == theirs["type"]
    for path in out.glob("*.jsonl"):
        lines = path.read_text().splitlines()
        assert len(lines) == len(set(lines)), f"{path.name} holds duplicated lines"
    assert not out.with_name(f".{out.name}.partial").exists()


def _filter_args(work: Path) -> list:
    return ["filter", "--queries", work / "big-queries.jsonl", "--dataset", work / "big"]


def _triples_args(work: Path) -> list:
    return ["triples", "--dataset", work / "big", "--run", work / "big-run.trec",
            "--queries", work / "big-queries.jsonl", "--seed", "1"]  # fmt: skip


@pytest.mark.parametrize("stage", ["filter", "triples"])
def test_kill_during_stage_then_rerun_loses_and_duplicates_nothing(work: Path, stage: str):
    """kill -9 while ``inpars filter`` / ``inpars triples`` runs: --out is not published; the
    rerun (over the leftover partial folder) ends with exactly an uninterrupted run's artifact."""
    _big_work(work, documents=200, queries=20000)
    args = _filter_args(work) if stage == "filter" else _triples_args(work)
    whole = run_cli([*args, "--out", work / "whole"], work)
    assert whole.code == 0, whole.stderr[-3000:]

    out = work / "killed"
    _kill_mid_run(args, out, work)
    again = run_cli([*args, "--out", out], work)
    assert again.code == 0, again.stderr[-3000:]
    _assert_same_artifact(out, work / "whole")


@pytest.mark.parametrize("stage", ["filter", "triples"])
def test_kill_during_an_atomic_write_leaves_no_stray_file_in_the_rerun(work: Path, stage: str):
    """A kill inside an atomic write leaves its temporary folder (``.<file>.<random>.tmp``) in
    the partial folder; the rerun must not publish it inside the artifact."""
    _big_work(work, documents=20, queries=50)
    args = _filter_args(work) if stage == "filter" else _triples_args(work)
    whole = run_cli([*args, "--out", work / "whole"], work)
    assert whole.code == 0, whole.stderr[-3000:]

    out = work / "killed"
    data = "queries.jsonl" if stage == "filter" else "triples.jsonl"
    stray = work / ".killed.partial" / f".{data}.k9x2.tmp"
    stray.mkdir(parents=True)
    (stray / data).write_text((work / "whole" / data).read_text()[:100])  # cut mid-line
    again = run_cli([*args, "--out", out], work)
    assert again.code == 0, again.stderr[-3000:]
    _assert_same_artifact(out, work / "whole")


@pytest.mark.integration
def test_kill_during_dense_index_then_rerun_loses_nothing(work: Path, tmp_path: Path):
    """kill -9 while ``inpars dense-index`` encodes (fresh cache): --out is not published; the
    rerun ends with the embeddings and ids of an uninterrupted run (its own cache)."""
    import numpy as np

    _big_work(work, documents=800, queries=1)
    args = ["dense-index", "--dataset", work / "big", "--model", "minilm", "--max-length", "32",
            "--no-progress"]  # fmt: skip
    env = dict(os.environ, INPARS_CACHE_DIR=str(tmp_path / "cache-whole"))
    whole = run_cli([*args, "--out", work / "whole"], work, env)
    assert whole.code == 0, whole.stderr[-3000:]

    env["INPARS_CACHE_DIR"] = str(tmp_path / "cache-killed")
    out = work / "killed"
    _kill_mid_run(args, out, work, env)
    again = run_cli([*args, "--out", out], work, env)
    assert again.code == 0, again.stderr[-3000:]
    assert "reusing dense index" not in again.stderr  # the killed encoding was not kept
    assert (out / "doc_ids.json").read_bytes() == (work / "whole" / "doc_ids.json").read_bytes()
    mine, theirs = np.load(out / "embeddings.npy"), np.load(work / "whole" / "embeddings.npy")
    assert mine.shape == theirs.shape == (800, mine.shape[1])
    assert np.allclose(mine, theirs, atol=1e-5)
    a, b = (json.loads((f / "meta.json").read_text()) for f in (out, work / "whole"))
    assert a["counts"] == b["counts"] == {"documents": 800, "dimension": mine.shape[1]}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (work / "whole").iterdir()
    )
    assert not (work / ".killed.partial").exists()
