"""Crashes, concurrency, hostile bytes and code hygiene: the registry loses nothing.

Uses the model-free `pixels` encoder so that many real `gmi` processes fit in CI time."""

import os
import random
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_submission, run_gmi
from gmi.errors import InvalidInputError
from gmi.imagefolder import read_metadata
from gmi.images import open_image
from gmi.registry import Registry
from gmi.registry.check import check_registry

SRC = Path(__file__).resolve().parent.parent / "src" / "gmi"


@pytest.fixture(scope="module")
def pixel_folder(tmp_path_factory):
    return make_submission(tmp_path_factory.mktemp("pix") / "flat", "flat-base", n=8)


def _gmi_cmd(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "gmi.cli", "--home", str(home), *args]


def test_check_reports_and_repairs(tmp_path, pixel_folder):
    home = tmp_path / "hub"
    assert run_gmi("init", "--encoder", "pixels", home=home).returncode == 0
    for name in ("a", "b"):
        assert run_gmi("submit", name, "--images", str(pixel_folder), home=home).returncode == 0
    registry = Registry(home, create=False)
    (registry.spec_dir / "deadbeef.safetensors").write_bytes(b"left by a crash")
    (registry.spec_dir / ".tmp-123.safetensors").write_bytes(b"half")
    report = check_registry(registry)
    assert report.consistent and len(report.orphans) == 2
    record = registry.get("b")
    path = registry.spec_dir / record.spec_file
    path.write_bytes(path.read_bytes()[:-10])
    result = run_gmi("check", "--json", home=home)
    assert result.returncode == 1
    assert "b: spec file does not match" in result.stdout
    repaired = run_gmi("check", "--repair", "--grace", "0", "--json", home=home)
    assert repaired.returncode == 0, repaired.stdout
    assert [r.name for r in registry.list()] == ["a"]
    assert check_registry(registry).orphans == []


def test_sigkill_during_submit_leaves_models_whole_or_absent(tmp_path, pixel_folder):
    """50 `gmi submit` processes killed with SIGKILL at random moments of their run."""
    home = tmp_path / "hub"
    assert run_gmi("init", "--encoder", "pixels", home=home).returncode == 0
    started = time.perf_counter()
    subprocess.run(
        _gmi_cmd(home, "submit", "warmup", "--images", str(pixel_folder), "--quiet"),
        check=True,
        capture_output=True,
    )
    duration = time.perf_counter() - started
    rng = random.Random(7)
    for trial in range(50):
        proc = subprocess.Popen(
            _gmi_cmd(home, "submit", f"m{trial}", "--images", str(pixel_folder), "--quiet"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.1, 1.1) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    registry = Registry(home, create=False)
    report = check_registry(registry)
    assert report.consistent, report.problems  # every model whole or absent
    names = {r.name for r in registry.list()}
    present = [t for t in range(50) if f"m{t}" in names]
    assert 0 < len(present) < 50  # the kills landed both before and after the commit
    for record in registry.list():
        registry.load_spec(record)  # every listed model loads
    assert check_registry(registry, repair=True, grace_s=0).orphans == []
    identify = run_gmi("identify", str(pixel_folder / "0000.png"), "--json", home=home)
    assert identify.returncode == 0, identify.stderr


def test_concurrent_processes_lose_nothing(tmp_path, pixel_folder):
    """4 processes at once, each submitting 3 models, identifying and removing one."""
    home = tmp_path / "hub"
    assert run_gmi("init", "--encoder", "pixels", home=home).returncode == 0
    query = str(pixel_folder / "0001.png")

    def worker(w: int) -> list[subprocess.CompletedProcess]:
        runs = []
        for k in range(3):
            runs.append(
                subprocess.run(
                    _gmi_cmd(home, "submit", f"w{w}-{k}", "--images", str(pixel_folder), "--quiet"),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            )
            runs.append(
                subprocess.run(
                    _gmi_cmd(home, "identify", query, "--json"),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            )
        runs.append(
            subprocess.run(
                _gmi_cmd(home, "remove", f"w{w}-0"), capture_output=True, text=True, timeout=120
            )
        )
        return runs

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = [r for rs in pool.map(worker, range(4)) for r in rs]
    failed = [(r.args, r.stderr) for r in runs if r.returncode != 0]
    assert not failed, failed
    assert not any("locked" in r.stderr for r in runs)
    registry = Registry(home, create=False)
    assert sorted(r.name for r in registry.list()) == sorted(
        f"w{w}-{k}" for w in range(4) for k in (1, 2)
    )
    assert check_registry(registry).consistent


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_image_bytes(data):
    try:
        image = open_image(data)
    except InvalidInputError:
        return
    assert image.mode == "RGB"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80),
            st.builds(
                lambda n, t: '{"file_name": ' + n + ', "text": ' + t + "}",
                st.sampled_from(['"a.png"', '"../a.png"', '"/etc/passwd"', "1", "null", '""']),
                st.sampled_from(['"x"', "3", "null", '""', '"' + "y" * 50 + '"']),
            ),
        ),
        max_size=6,
    )
)
def test_fuzz_metadata_lines(tmp_path, lines):
    folder = tmp_path / "fuzz"
    folder.mkdir(exist_ok=True)
    (folder / "a.png").write_bytes(b"")
    (folder / "metadata.jsonl").write_text("\n".join(lines), encoding="utf-8")
    try:
        pairs = read_metadata(folder)
    except InvalidInputError:
        return
    assert all(p.path.parent == folder.resolve() for p in pairs)


def test_no_pickle_anywhere_in_the_package():
    """Specs and caches are data: no pickle, and torch.load only with weights_only=True."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if (
            re.search(
                r"^\s*(import pickle|from pickle|import cPickle|import dill|import joblib)",
                text,
                re.M,
            )
            or "pickle.load" in text
        ):
            offenders.append(f"{path}: pickle")
        for call in re.finditer(r"torch\.load\(", text):
            if "weights_only=True" not in text[call.end() : call.end() + 300]:
                offenders.append(f"{path}: torch.load without weights_only=True")
    assert not offenders, offenders


def test_server_sends_no_cors_headers():
    from fastapi.testclient import TestClient

    from gmi.server.app import create_app

    client = TestClient(create_app(Path(os.devnull).parent / "nonexistent-hub-for-cors"))
    response = client.get("/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in {k.lower() for k in response.headers}


def test_long_empty_and_unicode_prompts_are_accepted(tmp_path, pixel_folder):
    import json as _json
    import shutil

    folder = tmp_path / "odd-prompts"
    shutil.copytree(pixel_folder, folder)
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    prompts = ["x" * 10_000, "", "ein rotes Kätzchen 🐱 bei Nacht", "夜の赤い猫"]
    rewritten = [
        _json.dumps(
            {"file_name": _json.loads(line)["file_name"], "text": prompts[i % len(prompts)]}
        )
        for i, line in enumerate(lines)
    ]
    (folder / "metadata.jsonl").write_text("\n".join(rewritten) + "\n", encoding="utf-8")
    home = tmp_path / "hub"
    assert run_gmi("init", "--encoder", "pixels", home=home).returncode == 0
    result = run_gmi("submit", "odd", "--images", str(folder), home=home)
    assert result.returncode == 0, result.stderr
    info = _json.loads(run_gmi("info", "odd", "--json", home=home).stdout)
    assert info["example_prompts"][2] == "ein rotes Kätzchen 🐱 bei Nacht"
