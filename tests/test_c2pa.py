"""Content Credentials: an image signed with a C2PA manifest by a closed generator says so in
the identify entry (read with c2pa-python, offline), and on the page's API."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from c2pa_sign import signed
from metadata_files import pixels

from conftest import hub_copy, run_gmi
from gmi.images import open_image
from gmi.metadata import read_embedded


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_signed_image_reports_its_generator(fmt):
    found = read_embedded(open_image(signed(pixels(5, 96), fmt), "gen"))
    provenance = found.provenance
    assert provenance["read"] is True and provenance["ai_generated"] is True
    assert provenance["claim_generator"] == "Closed Image Model 2.0"
    assert provenance["signed_by"] == "gmi tests"
    assert not found.warnings


def test_identify_entry_and_cli_line(tmp_path, pristine_hub):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    path = tmp_path / "gen.jpg"
    path.write_bytes(signed(pixels(6, 96)))
    done = run_gmi("identify", str(path), "--json", home=home)
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)[0]
    assert entry["provenance"]["ai_generated"] is True
    assert entry["provenance"]["claim_generator"] == "Closed Image Model 2.0"
    assert entry["prompt_source"] == "interrogated"  # a manifest holds no prompt
    text = run_gmi("identify", str(path), home=home).stdout
    assert "Content Credentials (C2PA): AI-generated, made by Closed Image Model 2.0" in text


def test_without_the_library_the_manifest_is_present_and_unread(tmp_path):
    path = tmp_path / "gen.jpg"
    path.write_bytes(signed(pixels(7, 96)))
    code = (
        "import sys, json; sys.modules['c2pa'] = None\n"
        "from gmi.images import open_image; from gmi.metadata import read_embedded\n"
        f"print(json.dumps(read_embedded(open_image({str(path)!r})).provenance))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    provenance = json.loads(done.stdout)
    assert provenance["read"] is False and "gmi[c2pa]" in provenance["reason"]


def test_a_damaged_manifest_is_a_warning():
    data = bytearray(signed(pixels(8, 96)))
    at = data.find(b"c2pa.signature")
    data[at + 40 : at + 200] = b"\x00" * 160  # break the signature box
    found = read_embedded(open_image(bytes(data), "broken"))
    assert found.provenance is not None and found.provenance["c2pa"] is True
