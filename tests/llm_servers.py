"""Real components for generation tests: a llama.cpp OpenAI-compatible server and a loopback
proxy that counts requests per document and injects faults. Everything binds to 127.0.0.1."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` serving the packaged Gemma GGUF on 127.0.0.1."""

    def __init__(self, gguf: str, log_path: Path) -> None:
        self.port = free_port()
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                gguf,
                "--model_alias",
                "gemma-3-270m",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_ctx",
                "1024",
                "--n_threads",
                "2",
                "--logits_all",
                "true",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama server exited; see {log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/v1/models")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("llama server did not start in 120 s")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def document_key(body: dict) -> str:
    """Which document a request is about: the last line starting with 'Document:'."""
    text = body.get("prompt") or "\n".join(m["content"] for m in body.get("messages", []))
    lines = [line for line in str(text).splitlines() if line.startswith("Document:")]
    return lines[-1] if lines else str(text)


class CountingProxy:
    """Forwards to ``upstream``; ``faults(key, attempt)`` may return a status to send instead.

    ``passed`` counts requests forwarded with a successful answer, per document.
    """

    def __init__(
        self,
        upstream_port: int,
        faults: Callable[[str, int], int | None] = lambda key, attempt: None,
    ) -> None:
        self.attempts: Counter[str] = Counter()
        self.passed: Counter[str] = Counter()
        self.injected: Counter[int] = Counter()
        lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = document_key(json.loads(raw or b"{}"))
                with lock:
                    proxy.attempts[key] += 1
                    attempt = proxy.attempts[key]
                status = faults(key, attempt)
                if status is not None:
                    with lock:
                        proxy.injected[status] += 1
                    body = json.dumps(
                        {"error": {"message": f"injected {status}", "type": "test", "code": status}}
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=300)
                conn.request(
                    "POST", self.path, body=raw, headers={"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                payload = response.read()
                if response.status == 200:
                    with lock:
                        proxy.passed[key] += 1
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self.send_error(404)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def stop(self) -> None:
        self.server.shutdown()
