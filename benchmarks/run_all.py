"""`make bench`: every hot path of InPars Lab measured against its plain-library equivalent in the
same run, printed as one table (path, ours, reference, ratio, target, met, quality check) and
written to ``benchmarks/results/<path>-<machine>.json`` with the machine's facts.

Each ``benchmarks/bench_<path>.py`` module has ``run(quick: bool) -> list[dict]`` returning rows
with the keys of :data:`ROW_KEYS`; this file only runs them and reports. Absolute times drift on
shared machines; the ratios are measured side by side (ours and the reference interleaved in one
process), so they hold better. Run on an idle machine.

Run: ``.venv/bin/python benchmarks/run_all.py [--quick] [--only rerank,bm25] [--no-write]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import re
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The benchmark modules, in the order the table lists them.
PATHS = ("rerank", "rerank_exact", "generate", "train", "dense", "bm25", "scale")
#: The keys every row of a benchmark module has.
ROW_KEYS = ("path", "ours", "reference", "ratio", "target", "met", "quality", "details")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def machine_info() -> dict:
    """CPU model and flags, cores, memory, torch threads and GPU (if any) of this machine."""
    info: dict = {
        "hostname": platform.node(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        info["cpu_model"] = model.group(1).strip() if model else platform.processor()
        present = set(flags.group(1).split()) if flags else set()
        info["cpu_flags"] = [flag for flag in CPU_FLAGS if flag in present]
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.M)
        info["memory_gib"] = round(int(total.group(1)) / 2**20, 1) if total else None
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch"] = None
    return info


def machine_slug(info: dict) -> str:
    """``<gpu name>`` or ``cpu<cores>-<vendor>``: the ``<machine>`` of the result file names."""
    if info.get("gpu"):
        name = info["gpu"]
    else:
        model = info.get("cpu_model", "")
        vendor = "intel" if "Intel" in model else "amd" if "AMD" in model else "other"
        name = f"cpu{info.get('cpu_count')}-{vendor}"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def run_path(path: str, quick: bool) -> tuple[list[dict], float, str | None]:
    """The rows of ``benchmarks/bench_<path>.py`` (an error row when it fails), its seconds and
    the error text."""
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench_{path}")
        rows = module.run(quick=quick)
        for row in rows:
            missing = [key for key in ROW_KEYS if key not in row]
            if missing:
                raise ValueError(f"bench_{path}.run returned a row without {missing}: {row}")
        return rows, time.perf_counter() - started, None
    except Exception as exc:  # one failing benchmark must not hide the others
        error = f"{type(exc).__name__}: {exc}"
        logging.getLogger(__name__).error("bench_%s failed:\n%s", path, traceback.format_exc())
        row = dict.fromkeys(ROW_KEYS, "")
        row.update(path=path, ours="failed", met=False, quality=error, details={})
        return [row], time.perf_counter() - started, error


def table(rows: list[dict]) -> str:
    """The Markdown table of ``rows``."""
    lines = [
        "| path | ours | reference | ratio | target | met | quality check |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row["ratio"]
        shown = f"{ratio:.2f}x" if isinstance(ratio, int | float) else str(ratio or "")
        met = {True: "yes", False: "**no**"}.get(row["met"], str(row["met"]))
        cells = [row["path"], row["ours"], row["reference"], shown, row["target"], met]
        lines.append("| " + " | ".join(str(c) for c in cells) + f" | {row['quality']} |")
    return "\n".join(lines)


def write_result(path: str, rows: list[dict], seconds: float, info: dict, quick: bool) -> Path:
    """``benchmarks/results/<path>-<machine>.json`` (atomic: a temp file, then renamed)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{path}-{machine_slug(info)}.json"
    payload = {
        "path": path,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "seconds": round(seconds, 1),
        "machine": info,
        "rows": rows,
    }
    temp = target.with_suffix(".json.tmp")
    temp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    temp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit 1 when one failed (a target not met is reported, not an error)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", help=f"comma-separated paths among {', '.join(PATHS)}")
    parser.add_argument("--no-write", action="store_true", help="print only, write no result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    shared = ROOT.parent / "shared" / "datasets"
    if "INPARS_DATA_DIR" not in os.environ and shared.is_dir():
        os.environ["INPARS_DATA_DIR"] = str(shared)
    chosen = args.only.split(",") if args.only else list(PATHS)
    unknown = [p for p in chosen if p not in PATHS]
    if unknown:
        parser.error(f"unknown path(s) {unknown}: choose among {', '.join(PATHS)}")
    info = machine_info()
    print(
        f"machine: {info.get('cpu_model')} ({info.get('cpu_count')} cores, flags "
        f"{' '.join(info.get('cpu_flags', []))}), torch threads {info.get('torch_threads')}, "
        f"GPU {info.get('gpu', 'none')}" + (" — quick sizes" if args.quick else "")
    )
    everything: list[dict] = []
    failed = False
    for path in chosen:
        rows, seconds, error = run_path(path, args.quick)
        failed |= error is not None
        everything += rows
        written = "" if args.no_write else write_result(path, rows, seconds, info, args.quick)
        print(f"{path}: {seconds:.0f} s" + (f" -> {written}" if written else ""), flush=True)
    print()
    print(table(everything))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
