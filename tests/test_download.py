"""Downloading named BEIR datasets, against an HTTP server on 127.0.0.1 serving a zip we build."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from inpars_core.datasets import download_beir_dataset, resolve_dataset
from inpars_core.errors import DownloadError
from tests.conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir


def _zip_of(folder: Path, name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{name}/{path.relative_to(folder)}")
    return buffer.getvalue()


@pytest.fixture
def archive_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, bytes], list[str]]]:
    """Serve ``files`` (name -> bytes) on 127.0.0.1; yields (base URL, files, requested paths)."""
    files: dict[str, bytes] = {}
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            body = files.get(self.path.rsplit("/", 1)[-1])
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/beir", files, requested
    finally:
        server.shutdown()


@pytest.fixture
def tiny_zip(tmp_path: Path) -> bytes:
    return _zip_of(write_beir(tmp_path / "src", TINY_CORPUS, TINY_QUERIES, TINY_QRELS), "tiny")


def test_download_verifies_and_unpacks(archive_server, tiny_zip: bytes, tmp_path: Path) -> None:
    base_url, files, _ = archive_server
    files["tiny.zip"] = tiny_zip
    seen: list[tuple[int, int | None]] = []
    root = tmp_path / "cache"
    folder = download_beir_dataset(
        "tiny",
        root,
        base_url=base_url,
        expected_md5=hashlib.md5(tiny_zip).hexdigest(),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert folder == root / "tiny"
    assert (folder / "corpus.jsonl").is_file() and (folder / "qrels" / "test.tsv").is_file()
    assert seen[-1] == (len(tiny_zip), len(tiny_zip))
    assert sorted(p.name for p in root.iterdir()) == ["tiny"], "no staging folder left behind"


def test_named_dataset_downloads_then_checksum_mismatch_leaves_nothing(
    archive_server, tiny_zip: bytes, tmp_path: Path, monkeypatch
) -> None:
    """`scifact` is resolved through the download path; our zip is not the published one."""
    base_url, files, requested = archive_server
    files["scifact.zip"] = tiny_zip
    monkeypatch.setenv("INPARS_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("INPARS_BEIR_BASE_URL", base_url)
    with pytest.raises(DownloadError, match="does not match the published 5f7d1de6"):
        resolve_dataset("scifact")
    assert requested == ["/beir/scifact.zip"]
    assert list((tmp_path / "cache").iterdir()) == []


def test_http_error_is_a_clear_download_error(archive_server, tmp_path: Path) -> None:
    base_url, _, _ = archive_server
    with pytest.raises(DownloadError, match=r"could not download .*missing\.zip.*Fix"):
        download_beir_dataset("missing", tmp_path, base_url=base_url, expected_md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_archive_without_corpus_is_refused(archive_server, tmp_path: Path) -> None:
    base_url, files, _ = archive_server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("odd/readme.txt", "no corpus here")
    files["odd.zip"] = buffer.getvalue()
    with pytest.raises(DownloadError, match=r"no corpus\.jsonl"):
        download_beir_dataset(
            "odd",
            tmp_path,
            base_url=base_url,
            expected_md5=hashlib.md5(files["odd.zip"]).hexdigest(),
        )
    assert list(tmp_path.iterdir()) == []


def test_zip_slip_is_refused(archive_server, tmp_path: Path) -> None:
    base_url, files, _ = archive_server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../evil/corpus.jsonl", "{}")
    files["evil.zip"] = buffer.getvalue()
    with pytest.raises(DownloadError, match="escape"):
        download_beir_dataset(
            "evil",
            tmp_path / "root",
            base_url=base_url,
            expected_md5=hashlib.md5(files["evil.zip"]).hexdigest(),
        )
    assert not (tmp_path / "evil").exists()
