"""The OpenAPI schema says what the server does: schemathesis (a real, independent API tester)
runs every check against a live `gmi serve` on a copy of a small hub, with and without the
admin token. Its custom media types (tests/schemathesis_hooks.py) make image and zip parts real
images and imagefolder zips; tests/schemathesis.toml states the one relaxation and why."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_server import TOKEN, running_server

from conftest import hub_copy

HERE = Path(__file__).resolve().parent
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def small_hub(tmp_path_factory, pristine_hub):
    return hub_copy(pristine_hub, tmp_path_factory.mktemp("schema-hub") / "hub")


def run_schemathesis(
    base: str, token: str | None, config: bool = True, only: list[str] = ()
) -> tuple[int, str]:
    command = [str(Path(sys.executable).with_name("st"))]
    if config:
        command += ["--config-file", str(HERE / "schemathesis.toml")]
    command += [
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "20261126",
        "--generation-database",
        "none",
        "--no-color",
        "--request-timeout",
        "60",
    ]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    for path in only:
        command += ["--include-path", path]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": str(HERE)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=HERE)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("with_token", [True, False], ids=["admin-token", "no-token"])
def test_schemathesis_all_checks_pass(small_hub, tmp_path, with_token):
    home = tmp_path / "hub"
    shutil.copytree(small_hub, home)  # the admin run adds and deletes models
    with running_server(home) as base:
        code, output = run_schemathesis(base, TOKEN if with_token else None)
    summary = re.search(r"(\d+) generated, (\d+) passed", output)
    print(output[-1500:])  # visible with -s: phases, cases, warnings
    assert code == 0, output[-6000:]
    assert summary is not None and int(summary.group(1)) >= 100, output[-2000:]
    assert "Selected: 8/8" in output and "Tested: 8" in output


def test_identify_passes_every_check_with_no_relaxation(small_hub, tmp_path):
    """D17: with no project configuration at all, an empty image part was schema-valid and
    refused (ST202); the schema now says a binary part holds at least one byte."""
    home = tmp_path / "hub"
    shutil.copytree(small_hub, home)
    with running_server(home) as base:
        schema = httpx.get(f"{base}/openapi.json").json()
        code, output = run_schemathesis(base, None, config=False, only=["/api/identify"])
    forms = schema["components"]["schemas"]
    identify = forms["Body_identify_api_identify_post"]["properties"]
    upload = forms["Body_add_model_api_models_post"]["properties"]
    assert identify["images"]["items"]["minLength"] == 1
    assert upload["archive"]["minLength"] == 1 and upload["files"]["items"]["minLength"] == 1
    # what the form parser takes (1,000 files, 1 MiB a text part), not 5,000 and 200 MiB
    assert upload["files"]["maxItems"] == 1000
    assert upload["metadata"]["maxLength"] * 4 <= 2**20
    assert code == 0, output[-6000:]
    assert "Selected: 1/8" in output, output[-2000:]
