"""HTTP as clients meet it: an oversized body answered so every client can read the 413, 405s
that name every method of their path, and docs pages that need no internet access."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY

LIMIT = 64 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(settings: Any) -> Iterator[str]:
    """The app behind a real uvicorn on loopback, with a small body limit."""
    from api.main import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings.model_copy(update={"max_body_bytes": LIMIT})),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("size", [LIMIT + 1, 40 * LIMIT])
def test_a_client_that_writes_its_whole_oversized_body_first_reads_the_413(served: str, size: int) -> None:
    request = urllib.request.Request(f"{served}/v1/namespaces/whatever/sessions", data=b"x" * size, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {ADMIN_KEY}"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=20)
    assert answer.value.code == 413
    assert answer.value.headers["Content-Type"] == "application/problem+json"
    body = json.loads(answer.value.read())
    assert body["status"] == 413 and str(LIMIT) in body["detail"]


def test_a_405_names_every_method_its_path_serves(app: Any, http: TestClient) -> None:
    walked = 0
    for path, operations in app.openapi()["paths"].items():
        served = {m.upper() for m in operations}
        refused = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET", "HEAD") if m not in served)
        url = re.sub(r"\{(\w+)\}", "x", path)
        r = http.request(refused, url)
        assert r.status_code == 405, (refused, url, r.status_code)
        assert set(r.headers["allow"].split(", ")) == served, (path, r.headers["allow"])
        assert r.headers["content-type"] == "application/problem+json"
        walked += 1
    assert walked >= 25
    allow = http.options("/v1/namespaces/x/sessions").headers["allow"]
    assert set(allow.split(", ")) == {"GET", "POST"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_their_assets_from_this_server(http: TestClient, page: str) -> None:
    html = http.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text) + re.findall(r"url: '([^']+)'", html.text)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, html.text
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        got = http.get(asset)
        assert got.status_code == 200, asset
        if asset.endswith(".js"):
            assert "javascript" in got.headers["content-type"] and len(got.content) > 100_000
        if asset.endswith(".css"):
            assert "text/css" in got.headers["content-type"]
