"""Named BEIR datasets: found under ``$INPARS_DATA_DIR/<name>`` or downloaded and verified."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inpars_core.artifacts import SAFE_NAME_TEXT, is_safe_name
from inpars_core.datasets.beir import CORPUS_FILE, Dataset, load_beir_folder
from inpars_core.errors import DownloadError, InputFormatError, UnknownNameError

logger = logging.getLogger(__name__)

#: Where the public BEIR archives live; override with ``$INPARS_BEIR_BASE_URL`` (tests, mirrors).
BEIR_BASE_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"

#: Default cache of datasets, relative to the project root, unless ``$INPARS_DATA_DIR`` is set.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "datasets"

ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class NamedDataset:
    """A BEIR dataset with its published archive checksum and statistics."""

    name: str
    md5: str
    documents: int
    test_queries: int

    def url(self, base_url: str | None = None) -> str:
        """Download address of the archive."""
        base = base_url or os.environ.get("INPARS_BEIR_BASE_URL") or BEIR_BASE_URL
        return f"{base.rstrip('/')}/{self.name}.zip"


#: md5 sums and sizes as published in the BEIR repository's dataset table.
BEIR_DATASETS: dict[str, NamedDataset] = {
    d.name: d
    for d in (
        NamedDataset("scifact", "5f7d1de60b170fc8027bb7898e2efca1", 5183, 300),
        NamedDataset("nfcorpus", "a89dba18a62ef92f7d323ec890a0d38d", 3633, 323),
        NamedDataset("trec-covid", "ce62140cb23feb9becf6270d0d1fe6d1", 171332, 50),
        NamedDataset("fiqa", "17918ed23cd04fb15047f73e6c3bd9d9", 57638, 648),
        NamedDataset("arguana", "8ad3e3c2a5867cdced806d6503f29b99", 8674, 1406),
        NamedDataset("scidocs", "38121350fc3a4d2f48850f6aff52e4a9", 25657, 1000),
    )
}


def data_dir() -> Path:
    """The dataset cache folder: ``$INPARS_DATA_DIR`` or ``data/datasets`` in the project."""
    configured = os.environ.get("INPARS_DATA_DIR")
    return Path(configured).expanduser() if configured else DEFAULT_DATA_DIR


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_extract(archive: zipfile.ZipFile, destination: Path) -> None:
    root = destination.resolve()
    for member in archive.infolist():
        target = (destination / member.filename).resolve()
        if not target.is_relative_to(root):
            raise DownloadError(f"archive member {member.filename!r} would escape {destination}")
    archive.extractall(destination)


def download_beir_dataset(
    name: str,
    destination_root: Path | None = None,
    *,
    base_url: str | None = None,
    expected_md5: str | None = None,
    progress: ProgressCallback | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``<name>.zip``, verify its md5, and unpack it atomically to ``root/<name>``.

    ``expected_md5`` defaults to the published checksum of a known dataset. Nothing appears at
    the destination unless the archive was complete, verified and held a BEIR corpus.
    """
    known = BEIR_DATASETS.get(name)
    if known is None and expected_md5 is None:
        raise UnknownNameError("dataset", name, list(BEIR_DATASETS))
    expected_md5 = expected_md5 or known.md5  # type: ignore[union-attr]
    url = (known or NamedDataset(name, expected_md5, 0, 0)).url(base_url)
    root = Path(destination_root) if destination_root else data_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".download", dir=root))
    try:
        archive_path = staging / f"{name}.zip"
        logger.info("downloading %s", url)
        try:
            with (
                urllib.request.urlopen(url, timeout=timeout_s) as response,
                open(archive_path, "wb") as out,
            ):
                total = response.headers.get("Content-Length")
                total_bytes = int(total) if total else None
                done = 0
                while block := response.read(1 << 16):
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total_bytes)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise DownloadError(
                f"could not download {url}: {exc}. Fix: check the network, or put the "
                f"BEIR folder at {final} (or set INPARS_DATA_DIR)"
            ) from exc
        found = _md5(archive_path)
        if found != expected_md5:
            raise DownloadError(
                f"{url}: md5 {found} does not match the published {expected_md5}; the download "
                "is corrupt or the mirror serves another file. Fix: retry, or use another mirror "
                "via INPARS_BEIR_BASE_URL"
            )
        unpacked = staging / "unpacked"
        try:
            with zipfile.ZipFile(archive_path) as archive:
                _safe_extract(archive, unpacked)
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{url}: not a zip archive ({exc})") from exc
        corpora = sorted(unpacked.rglob(CORPUS_FILE))
        if not corpora:
            raise DownloadError(f"{url}: the archive holds no {CORPUS_FILE}")
        dataset_folder = corpora[0].parent
        if final.exists():
            raise DownloadError(f"{final} appeared while downloading; remove it and retry")
        os.replace(dataset_folder, final)
        logger.info("unpacked %s to %s", name, final)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_dataset(
    name_or_dir: str | Path, *, download: bool = True, progress: ProgressCallback | None = None
) -> Dataset:
    """Load a dataset from a folder path or a BEIR name (downloading it if needed)."""
    candidate = Path(name_or_dir).expanduser()
    if candidate.is_dir():
        return load_beir_folder(candidate)
    if candidate.exists():
        raise InputFormatError(
            candidate,
            "expected a BEIR-layout dataset folder or a BEIR name, found a file",
            fix="give the folder holding corpus.jsonl, queries.jsonl and qrels/, or one of: "
            + ", ".join(BEIR_DATASETS),
        )
    name = str(name_or_dir)
    if not is_safe_name(name):  # a name is one folder of the data dir, never a path out of it
        raise InputFormatError(
            name,
            f"no such folder, and not a dataset name ({SAFE_NAME_TEXT})",
            fix=f"give a BEIR-layout folder that exists or one of: {', '.join(BEIR_DATASETS)}",
        )
    cached = data_dir() / name
    if cached.is_dir():
        return load_beir_folder(cached, name=name)
    if name not in BEIR_DATASETS:
        if os.sep in name or name.startswith("."):
            raise InputFormatError(
                name,
                "no such folder",
                fix=f"give a BEIR-layout folder or one of: {', '.join(BEIR_DATASETS)}",
            )
        raise UnknownNameError("dataset", name, list(BEIR_DATASETS))
    if not download:
        raise InputFormatError(
            cached,
            "not found and downloading is off",
            fix="download it first or set INPARS_DATA_DIR",
        )
    return load_beir_folder(download_beir_dataset(name, progress=progress), name=name)
