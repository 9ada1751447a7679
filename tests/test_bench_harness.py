"""`make bench`'s harness (benchmarks/run_all.py): the table, the result file and a failing
benchmark, with stand-in benchmark modules written here (the real ones time real work and belong
to `make bench`, not to the tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import run_all  # noqa: E402  (benchmarks/ is not a package)

ROW = {
    "path": "demo",
    "ours": "ours 60.0 pairs/s",
    "reference": "plain 20.0 pairs/s",
    "ratio": 3.0,
    "target": ">= 2.0x",
    "met": True,
    "quality": "max |Δ score| 1e-4",
    "details": {"pairs": 10},
}


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch) -> Path:
    """Two benchmark modules on sys.path: ``bench_good`` returning :data:`ROW`, ``bench_bad``
    raising; results written under ``tmp_path``."""
    (tmp_path / "bench_good.py").write_text(
        f"def run(quick=False):\n    return [dict({ROW!r}, details={{'quick': quick}})]\n"
    )
    (tmp_path / "bench_bad.py").write_text("def run(quick=False):\n    raise OSError('no data')\n")
    partial = "def run(quick=False):\n    return [{'path': 'x'}]\n"
    (tmp_path / "bench_partial.py").write_text(partial)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(run_all, "RESULTS", tmp_path / "results")
    return tmp_path


def test_a_benchmarks_rows_are_tabled_and_written_with_the_machine(bench_dir: Path) -> None:
    rows, seconds, error = run_all.run_path("good", quick=True)
    assert error is None and rows[0]["details"] == {"quick": True}
    info = run_all.machine_info()
    written = run_all.write_result("good", rows, seconds, info, quick=True)
    assert written.name == f"good-{run_all.machine_slug(info)}.json"
    payload = json.loads(written.read_text())
    assert payload["rows"] == rows and payload["quick"] is True
    assert payload["machine"]["cpu_count"] >= 1 and "cpu_model" in payload["machine"]
    assert not list(written.parent.glob("*.tmp"))  # written through a temp file, renamed
    text = run_all.table(rows)
    assert "| demo | ours 60.0 pairs/s | plain 20.0 pairs/s | 3.00x | >= 2.0x | yes |" in text


def test_a_failing_or_malformed_benchmark_is_a_row_that_says_so(bench_dir: Path) -> None:
    rows, _, error = run_all.run_path("bad", quick=True)
    assert error == "OSError: no data"
    assert rows[0]["ours"] == "failed" and rows[0]["met"] is False
    assert "OSError: no data" in run_all.table(rows)
    rows, _, error = run_all.run_path("partial", quick=True)
    assert error is not None and "without" in error and "'ratio'" in error


def test_the_machine_slug_names_the_gpu_or_the_cpu() -> None:
    assert run_all.machine_slug({"gpu": "NVIDIA H100 80GB HBM3"}) == "nvidia-h100-80gb-hbm3"
    assert run_all.machine_slug({"cpu_model": "Intel(R) Xeon(R)", "cpu_count": 2}) == "cpu2-intel"
    assert run_all.machine_slug({"cpu_model": "AMD EPYC 9R14", "cpu_count": 16}) == "cpu16-amd"


def test_an_unknown_path_is_refused_with_the_choices(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        run_all.main(["--only", "nope", "--no-write"])
    assert stop.value.code == 2
    assert "unknown path(s) ['nope']: choose among rerank" in capsys.readouterr().err
