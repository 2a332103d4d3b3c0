"""The HTTP service against a real server process on 127.0.0.1 (uvicorn), and the web page in
a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)."""

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image, PngImagePlugin

from conftest import SMALL_ZOO, declared_png, hub_copy

TOKEN = "test-admin-token"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(home: Path, token: str = TOKEN, extra_env: dict | None = None, pid=None):
    """`gmi serve` in a real process on a free loopback port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "GMI_ADMIN_TOKEN": token, "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gmi.cli", "serve", "--home", str(home), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    if pid is not None:
        pid.append(proc.pid)
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode())
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise RuntimeError("gmi serve did not start in 90 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory, pristine_hub):
    home = hub_copy(pristine_hub, tmp_path_factory.mktemp("served") / "hub")
    with running_server(home) as base:
        yield base


def _zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, path.name)
    return buffer.getvalue()


def test_health_and_catalogue(server):
    assert httpx.get(f"{server}/healthz").json()["models"] == 3
    models = httpx.get(f"{server}/api/models").json()
    assert [m["name"] for m in models] == sorted(SMALL_ZOO[:3])
    one = httpx.get(f"{server}/api/models/ink-base").json()
    assert one["n_images"] == 12 and len(one["images"]) == 12 and one["example_prompts"]
    image = httpx.get(f"{server}{one['images'][3]}")
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert httpx.get(f"{server}/openapi.json").json()["info"]["title"] == "gmi"


def test_identify_matches_the_cli_contract_plus_evidence(server, query_images):
    files = [("images", ("q.jpg", query_images["photo-base"].read_bytes(), "image/jpeg"))]
    response = httpx.post(f"{server}/api/identify", files=files, data={"top": "2"}, timeout=60)
    assert response.status_code == 200, response.text
    [entry] = response.json()
    assert entry["image"] == "q.jpg" and isinstance(entry["prompt"], str)
    assert [r["rank"] for r in entry["results"]] == [1, 2]
    assert entry["results"][0]["model"] == "photo-base"
    top = entry["results"][0]
    assert top["description"] == "the photo-base model"
    assert len(top["evidence"]) == 3 and top["evidence"][0]["url"].startswith("/api/models/")
    together = httpx.post(
        f"{server}/api/identify", timeout=60, data={"together": "true"}, files=files * 2
    )
    assert len(together.json()) == 1


@pytest.mark.parametrize(
    "path, status",
    [
        ("/api/models/nope", 404),
        ("/api/models/ink-base/images/999", 404),
        ("/api/models/..%2F..%2Fetc%2Fpasswd/images/0", 404),
        ("/api/models/ink-base/images/-1", 422),  # the schema says index >= 0
        ("/static/..%2F..%2Fregistry.db", 404),
    ],
)
def test_bad_paths_are_json_4xx(server, path, status):
    response = httpx.get(f"{server}{path}")
    assert response.status_code == status
    assert "error" in response.json()


def test_405_names_the_allowed_methods_and_favicon(server):
    response = httpx.request("PUT", f"{server}/api/models/ink-base")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= {"GET", "DELETE"}
    image = httpx.delete(f"{server}/api/models/ink-base/images/0")
    assert image.status_code == 405 and "GET" in image.headers["allow"]
    icon = httpx.get(f"{server}/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")


def test_unauthorised_upload_is_refused_before_the_body(server):
    """401 without reading the upload: the answer comes while the body is still unsent."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(server)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 1000000000\r\n\r\n--b\r\n"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 401")


def test_bad_uploads_are_json_4xx(server):
    text = [("images", ("notes.png", b"just text", "image/png"))]
    response = httpx.post(f"{server}/api/identify", files=text)
    assert response.status_code == 400 and "not a readable image" in response.json()["error"]
    bomb = [("images", ("big.png", declared_png(60_000, 60_000), "image/png"))]
    assert httpx.post(f"{server}/api/identify", files=bomb).status_code == 400
    many = [("images", ("x.png", b"x", "image/png"))] * 9
    assert httpx.post(f"{server}/api/identify", files=many).status_code == 422  # maxItems 8
    zero = httpx.post(f"{server}/api/identify", files=text, data={"top": "0"})
    assert zero.status_code == 422 and "top" in zero.json()["error"]  # minimum 1
    no_image = [("note", ("a.txt", b"x", "text/plain"))]  # multipart, but no `images` part
    assert httpx.post(f"{server}/api/identify", files=no_image).status_code == 422
    plain = httpx.post(f"{server}/api/identify", content=b"hello")  # not multipart at all
    assert plain.status_code == 415 and "multipart/form-data" in plain.json()["error"]


def test_admin_writes(server, submissions, tmp_path):
    archive = _zip_of(submissions["neon-base"])
    data = {"name": "neon-base", "description": "neon"}
    files = {"archive": ("neon.zip", archive, "application/zip")}
    assert httpx.post(f"{server}/api/models", data=data, files=files).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (
        httpx.post(f"{server}/api/models", data=data, files=files, headers=wrong).status_code == 401
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    added = httpx.post(f"{server}/api/models", data=data, files=files, headers=auth, timeout=120)
    assert added.status_code == 201, added.text
    assert added.json()["n_images"] == 12
    again = httpx.post(f"{server}/api/models", data=data, files=files, headers=auth, timeout=120)
    assert again.status_code == 409 and "replace=true" in again.json()["error"]
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.txt", "x")
        zf.writestr("metadata.jsonl", "")
    bad = httpx.post(
        f"{server}/api/models",
        data={"name": "evil"},
        headers=auth,
        files={"archive": ("e.zip", evil.getvalue(), "application/zip")},
    )
    assert bad.status_code == 400 and "outside" in bad.json()["error"]
    bad_name = httpx.post(
        f"{server}/api/models",
        data={"name": "../x"},
        headers=auth,
        files={"archive": ("n.zip", archive, "application/zip")},
    )
    assert bad_name.status_code == 422 and "name" in bad_name.json()["error"]
    raw_token = {"Authorization": TOKEN}  # only the documented Bearer scheme is accepted
    assert httpx.delete(f"{server}/api/models/ink-base", headers=raw_token).status_code == 401
    folder = submissions["neon-base"]
    loose = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))]
    as_files = httpx.post(
        f"{server}/api/models",
        headers=auth,
        timeout=120,
        files=loose,
        data={
            "name": "neon-files",
            "metadata": (folder / "metadata.jsonl").read_text(),
            "model_hash": ["blake3:" + "5e" * 32, "neonStyle.safetensors"],
        },
    )
    assert as_files.status_code == 201, as_files.text
    invoke = {"positive_prompt": "neon", "model": {"name": "n", "hash": "blake3:" + "5e" * 32}}
    info = PngImagePlugin.PngInfo()
    info.add_text("invokeai_metadata", json.dumps(invoke))
    upload = io.BytesIO()
    Image.open(sorted(folder.glob("*.png"))[0]).save(upload, "PNG", pnginfo=info)
    named = httpx.post(
        f"{server}/api/identify",
        files={"images": ("q.png", upload.getvalue(), "image/png")},
        timeout=60,
    ).json()[0]
    assert named["embedded"]["writer"] == "invokeai"
    assert (named["results"][0]["model"], named["results"][0]["exact_match"]) == (
        "neon-files",
        True,
    )
    refused = httpx.post(
        f"{server}/api/models",
        headers=auth,
        files=loose[:1],
        data={"name": "neon-x", "metadata": "{}", "model_hash": "deadbeef1"},
    )
    assert refused.status_code == 400 and "not a checkpoint identity" in refused.json()["error"]
    broken = httpx.post(
        f"{server}/api/models",
        headers=auth,
        files=loose,
        data={"name": "neon-broken", "metadata": "{not json"},
    )
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("metadata.jsonl:1: not valid JSON")
    assert "/tmp" not in broken.json()["error"]  # no server paths in answers
    assert httpx.delete(f"{server}/api/models/neon-files", headers=auth).status_code == 200
    assert httpx.delete(f"{server}/api/models/neon-base").status_code == 401
    assert httpx.delete(f"{server}/api/models/neon-base", headers=auth).status_code == 200
    assert httpx.delete(f"{server}/api/models/neon-base", headers=auth).status_code == 404
    assert httpx.get(f"{server}/healthz").json()["models"] == 3


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            raise AssertionError("CI must install Debian's chromium and chromium-driver")
        pytest.skip(
            "chromium / chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1400",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def _identify_in_page(browser, image: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    file_input = browser.find_element(By.ID, "file")
    browser.execute_script("arguments[0].style.display = 'block'", file_input)
    file_input.send_keys(str(image))
    browser.execute_script("arguments[0].style.display = 'none'", file_input)
    WebDriverWait(browser, 10).until(ec.element_to_be_clickable((By.ID, "go"))).click()
    return WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#ranking .card")
    )


def test_web_page_in_headless_chromium(server, query_images, tmp_path):
    from PIL import Image, PngImagePlugin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    noise = tmp_path / "noise.png"  # nothing any model draws
    Image.effect_noise((320, 240), 120).convert("RGB").save(noise)
    embedded = tmp_path / "a1111.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle at night\nSteps: 20, Seed: 1, Size: 512x512, Model: x")
    Image.open(query_images["ink-base"]).convert("RGB").save(embedded, pnginfo=info)
    swarm = tmp_path / "swarm.png"
    info = PngImagePlugin.PngInfo()
    document = {
        "sui_image_params": {
            "prompt": "<img src=x onerror=alert(1)> a fox",
            "model": "sd_xl_base_1.0",
        },
        "sui_models": [
            {"name": "sd_xl_base_1.0.safetensors", "param": "model", "hash": "0x" + "ab" * 32}
        ],
    }
    info.add_text("parameters", json.dumps(document))
    Image.open(query_images["ink-base"]).convert("RGB").save(swarm, pnginfo=info)

    browser = _browser()
    try:
        browser.get(server + "/")
        cards = _identify_in_page(browser, query_images["ink-base"])
        assert cards[0].get_attribute("data-model") == "ink-base"
        score = float(cards[0].find_element(By.CSS_SELECTOR, ".score strong").text)
        assert 0.0 < score <= 1.0  # a real match reads as one
        assert "close match" in cards[0].text
        prompt = browser.find_element(By.CSS_SELECTOR, "#results .prompt").text
        assert prompt.startswith("Guessed prompt")
        assert not browser.find_elements(By.ID, "no-match")
        WebDriverWait(browser, 20).until(
            lambda b: b.execute_script(
                "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
            )
        )
        shot = tmp_path / "identify.png"
        browser.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("GMI_UPDATE_SCREENSHOT"):
            shutil.copy(shot, DOCS / "screenshot.png")

        browser.get(server + "/")
        _identify_in_page(browser, noise)
        message = browser.find_element(By.ID, "no-match").text
        assert message.startswith("No close match")
        if os.environ.get("GMI_UPDATE_SCREENSHOT"):
            browser.save_screenshot(str(DOCS / "screenshot-no-match.png"))

        browser.get(server + "/")
        _identify_in_page(browser, embedded)
        prompt = browser.find_element(By.CSS_SELECTOR, "#results .prompt").text
        assert prompt == "Prompt embedded in the image: a castle at night"
        lines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .metadata")]
        assert lines == ["AUTOMATIC1111 metadata: made with x"]

        browser.get(server + "/")  # SwarmUI's JSON: the prompt alone, markup shown as text
        _identify_in_page(browser, swarm)
        prompt = browser.find_element(By.CSS_SELECTOR, "#results .prompt").text
        assert prompt == "Prompt embedded in the image: <img src=x onerror=alert(1)> a fox"
        lines = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results .metadata")]
        assert lines[0].startswith("SwarmUI metadata: made with sd_xl_base_1.0 [sha256 ")
        assert not browser.find_elements(By.CSS_SELECTOR, "#results img[src=x]")

        browser.get(server + "/gallery")
        WebDriverWait(browser, 20).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, "#gallery .card")) == 3
        )
        browser.set_window_size(390, 844)  # a phone
        browser.get(server + "/")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390  # no horizontal scrolling on a phone
        _identify_in_page(browser, query_images["ink-base"])
        WebDriverWait(browser, 10).until(  # the results were scrolled into view
            lambda b: b.execute_script(
                "const r = document.getElementById('ranking').getBoundingClientRect();"
                "return window.scrollY > 0 && r.top < window.innerHeight;"
            )
        )
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []  # no 404 (favicon) or script error in the console
    finally:
        browser.quit()
