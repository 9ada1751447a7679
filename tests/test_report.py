"""``inpars report``: one self-contained HTML file (summary tables, Δ figures, the diagnosis)
from a hand-made experiment folder and from the smoke experiment made by the real pipeline."""

from __future__ import annotations

import html
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from inpars_core.cli import main
from inpars_core.diagnosis import Diagnosis, Finding, VariantDiagnosis, fine_tuned_variants

EXPERIMENT = "scifact-smoke"


class _Sources(HTMLParser):
    """Every ``src`` / ``href`` attribute of the document's tags (a script's own text is not
    parsed as tags: plotly.js may hold URLs in strings, which the browser never fetches)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.found += [(tag, k, v or "") for k, v in attrs if k in ("src", "href")]


def sources(text: str) -> _Sources:
    """The src/href attributes of an HTML document."""
    parser = _Sources()
    parser.feed(text)
    return parser


def hand_made_diagnosis(experiment: str, variants: list[str]) -> Diagnosis:
    """Four findings per variant, one per verdict, with text that must be escaped."""
    return Diagnosis(
        experiment,
        tuple(
            VariantDiagnosis(
                variant,
                f"{variant}: fine-tuned",
                "base",
                (
                    Finding(
                        "P2", "silent MSE", "fail",
                        f"{variant}: regression on 0/1 labels & logit std 0.01 < 0.1",
                        evidence={"probe_std_step0": 3.2, "probe_std_kept": 0.0104,
                                  "problem_type": "regression"},
                        ids=("q1/d9", "q2/d7"),
                        fix={"finetune.objective": "bce"},
                        expected="probe std stays > 1; nDCG@10 up",
                        page="training?runs=finetune/abc",
                    ),
                    Finding("P5", "lr and length", "warn", f"{variant}: dev fell from step 0",
                            evidence={"best_step": 0}, fix={"finetune.lr": 2e-05}),
                    Finding("P1", "pair encoding", "ok", f"{variant}: one [CLS], types 0→1"),
                    Finding("P8", "noisy queries", "n/a",
                            f"{variant}: not checked: no filter verdicts"),
                ),
            )
            for variant in variants
        ),
    )  # fmt: skip


def hand_made_experiment(folder: Path) -> Path:
    """An experiment folder with only experiment.json, summary.json (one with Δ intervals, one
    row without: an older summary) and a hand-made diagnosis.json."""
    folder.mkdir(parents=True)
    rows = [
        {"system": "BM25", "kind": "bm25", "depth": None, "measures": {"nDCG@10": 0.66}},
        {"system": "base <MiniLM>", "kind": "supervised", "depth": 20, "baseline": True,
         "measures": {"nDCG@10": 0.70}},
        {"system": "bce: fine-tuned", "kind": "synthetic", "depth": 20, "variant": "bce",
         "measures": {"nDCG@10": 0.73}, "delta": {"nDCG@10": 0.03},
         "significant": {"nDCG@10": False}, "compared_with": "base <MiniLM>",
         "delta_ci95": {"nDCG@10": [-0.004, 0.061]},
         "wins_ties_losses": {"nDCG@10": [30, 50, 20]},
         "p_values": {"nDCG@10": {"t_holm": 0.08, "wilcoxon_holm": 0.11}},
         "training": {"best_step": 100, "kept_step": 100, "final_step": 200}},
        {"system": "old row", "kind": "synthetic", "depth": 20, "variant": "old",
         "measures": {"nDCG@10": 0.65}, "delta": {"nDCG@10": -0.05},
         "significant": {"nDCG@10": True}, "compared_with": "base <MiniLM>"},
    ]  # fmt: skip
    summary = {
        "experiment": "hand-made",
        "dataset": "scifact",
        "test_queries": 100,
        "measures": ["nDCG@10"],
        "depths": [20],
        "baselines": {"20": "base <MiniLM>"},
        "rows": rows,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "experiment.json").write_text(json.dumps({"experiment": "hand-made"}))
    diagnosis = hand_made_diagnosis("hand-made", ["bce", "old"])
    (folder / "diagnosis.json").write_text(diagnosis.to_json())
    return folder


def assert_report_shows(text: str, rows: list[dict], diagnosis: Diagnosis) -> None:
    """Every summary row, every finding (code, verdict, summary, evidence, fix) is in the
    report; plotly.js is inline and nothing is loaded from the network."""
    for row in rows:
        assert f"<td>{html.escape(row['system'])}</td>" in text, row["system"]
    for item in diagnosis.variants:
        assert f"<h3>{html.escape(item.variant)}: {html.escape(item.system)}</h3>" in text
        for finding in item.findings:
            assert html.escape(finding.summary) in text
            assert f"verdict-{'na' if finding.verdict == 'n/a' else finding.verdict}" in text
            for key in finding.evidence:
                assert f"<code>{html.escape(key)}</code>" in text
            for key in finding.fix:
                assert html.escape(key) in text
    found = sources(text)
    assert found.scripts >= 2  # plotly.js inline, then each figure's call
    remote = [(t, k, v) for t, k, v in found.found if v.startswith(("http:", "https:", "//"))]
    assert not remote, remote
    assert text.count("Plotly.newPlot(") >= 1


def test_report_of_a_hand_made_experiment(tmp_path: Path, capsys) -> None:
    folder = hand_made_experiment(tmp_path / "runs" / "hand-made")
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out} (4 systems, 1 figures, 8 findings over 2" in printed
    assert "read from diagnosis.json" in printed
    text = out.read_text(encoding="utf-8")
    summary = json.loads((folder / "summary.json").read_text())
    diagnosis = Diagnosis.from_dict(json.loads((folder / "diagnosis.json").read_text()))
    assert_report_shows(text, summary["rows"], diagnosis)
    # Δ with its interval and Holm p-values; blank (not "None") where the summary has none
    assert '<td class="num">+0.0300</td><td class="num">[-0.0040, +0.0610]</td>' in text
    assert '<td class="num">-0.0500*</td><td class="num"></td>' in text  # no interval: blank
    assert '<td class="num">30/50/20</td><td class="num">0.0800</td>' in text
    assert "None" not in text.split("<script")[0] + text.split("</script>")[-1]
    assert "finetune.objective = &quot;bce&quot;" in text and "finetune.lr = 2e-05" in text
    assert "training?runs=finetune/abc" in text
    # a second report replaces the first (atomically), byte for byte the same
    assert main(["report", str(folder), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == text
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary left


def test_bad_experiment_folder_and_folder_out_are_refused_in_one_line(
    tmp_path: Path, capsys
) -> None:
    folder = hand_made_experiment(tmp_path / "hand-made")
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected an experiment folder holding experiment.json" in err
    assert main(["report", str(folder), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "found a folder" in err and "report.html" in err
    (folder / "diagnosis.json").write_text('{"experiment": "x"}')
    assert main(["report", str(folder), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diagnosis.json" in err and "inpars diagnose" in err
    (folder / "summary.json").write_text("{not json")
    assert main(["report", str(folder), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "summary.json" in err and "not JSON" in err
    assert not (tmp_path / "r.html").exists()


def smoke_copy(smoke: Path, target: Path) -> Path:
    """The smoke experiment's summary and manifest (what the report reads) with a hand-made
    diagnosis.json, in ``target`` (the shared smoke folder is never written)."""
    target.mkdir(parents=True)
    for name in ("summary.json", "experiment.json"):
        shutil.copy(smoke / name, target / name)
    diagnosis = hand_made_diagnosis(EXPERIMENT, fine_tuned_variants(smoke))
    (target / "diagnosis.json").write_text(diagnosis.to_json())
    return target


@pytest.mark.integration
def test_report_of_the_smoke_experiment(smoke_runs_dir: Path, tmp_path: Path) -> None:
    smoke = smoke_runs_dir / EXPERIMENT
    summary = json.loads((smoke / "summary.json").read_text())
    folder = smoke_copy(smoke, tmp_path / EXPERIMENT)
    out = tmp_path / "report.html"
    assert main(["report", str(folder), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    diagnosis = Diagnosis.from_dict(json.loads((folder / "diagnosis.json").read_text()))
    assert {v.variant for v in diagnosis.variants} == {"bce", "hf-default"}
    assert_report_shows(text, summary["rows"] + summary["no_overlap"]["rows"], diagnosis)
    for row in summary["rows"]:  # every compared row with its interval
        for measure, (low, high) in (row.get("delta_ci95") or {}).items():
            assert f"[{low:+.4f}, {high:+.4f}]" in text, (row["system"], measure)
    assert text.count('class="figure"') == len(summary["measures"]) + 1  # + without overlap
    # without diagnosis.json (the run writes one: a copy without it) the report computes it
    # (no model probe) from the stages
    bare = tmp_path / "bare" / EXPERIMENT
    bare.mkdir(parents=True)
    for name in ("summary.json", "experiment.json", "per_query.tsv"):
        shutil.copy(smoke / name, bare / name)
    (bare / "stages").symlink_to(smoke / "stages")
    out2 = tmp_path / "computed.html"
    assert main(["report", str(bare), "--out", str(out2)]) == 0
    computed = out2.read_text(encoding="utf-8")
    assert "computed now without model probes" in computed
    for variant in fine_tuned_variants(smoke):
        assert f"<h3>{html.escape(variant)}: " in computed
    assert not (smoke / "report.html").exists()
