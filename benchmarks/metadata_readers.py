"""gmi's generation-metadata reader vs a maintained library on the same real files.

    python benchmarks/metadata_readers.py [--library-python /path/to/venv/bin/python] [--json]

For every file of tests/fixtures/real-metadata (byte-exact files from real front-ends, with
what each says in expected.json) it reports whether the writer, the prompt, the checkpoint(s)
and their hashes came out right, for gmi and, when --library-python names an interpreter that
has `sd-parsers` installed (its own venv: `pip install sd-parsers`), for sd-parsers too. It also
times what `gmi identify` spends reading metadata from a 2 MB PNG (median of 50 reads).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from gmi.images import open_image
from gmi.metadata import read_embedded
from gmi.metadata.containers import read_entries

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real-metadata"

LIBRARY_ADAPTER = r"""
import json, sys
from sd_parsers import ParserManager
manager = ParserManager()
out = {}
for path in sys.argv[1:]:
    try:
        info = manager.parse(path)
    except Exception as exc:
        out[path] = {"error": str(exc)}
        continue
    if info is None:
        out[path] = None
        continue
    samplers = list(info.samplers)
    first = samplers[0] if samplers else None
    models = []
    for s in samplers:
        if s.model is not None and s.model.name not in [m["name"] for m in models]:
            models.append({"name": s.model.name, "hash": getattr(s.model, "hash", None)})
    out[path] = {
        "writer": str(info.generator.value),
        "prompt": "\n".join(p.value for p in first.prompts) if first else None,
        "negative": "\n".join(p.value for p in first.negative_prompts) if first else None,
        "models": models,
    }
print(json.dumps(out))
"""


def gmi_reading(path: Path) -> dict:
    found = read_embedded(open_image(path))
    return {
        "writer": found.writer,
        "prompt": found.prompt,
        "negative": found.negative_prompt,
        "models": [
            {"name": m.name, "hash": next(iter(m.to_json()["hashes"].values()), None)}
            for m in found.models
        ],
    }


def score(reading: dict | None, expected: dict) -> dict[str, bool]:
    """writer / prompt / models / hashes right (a writer name is compared loosely: libraries
    spell them their own way)."""
    if not reading or reading.get("error"):
        return {"writer": False, "prompt": False, "models": False, "hashes": False}
    prompt = (reading.get("prompt") or "").strip()
    if "prompt" in expected:
        prompt_ok = prompt == expected["prompt"]
    else:
        prompt_ok = prompt.startswith(expected["prompt_starts"])
    if "negative" in expected:
        prompt_ok &= (reading.get("negative") or "").strip() == expected["negative"]
    names = [m.get("name") for m in reading.get("models") or []]
    models_ok = (
        names[: len(expected["models"])] == expected["models"]
        if expected["models"]
        else (not names)
    )
    first_hash = (reading.get("models") or [{}])[0].get("hash") if names else None
    wanted = next(iter(expected["hashes"].values()), None)
    hashes_ok = str(first_hash or "").lower() == str(wanted or "").lower()
    writer = str(reading.get("writer") or "").lower().replace(" ", "").replace("_", "")
    return {
        "writer": expected["writer"].replace("-", "") in writer.replace("-", ""),
        "prompt": prompt_ok,
        "models": models_ok,
        "hashes": hashes_ok,
    }


def library_readings(python: str, paths: list[Path]) -> dict[str, dict | None]:
    done = subprocess.run(
        [python, "-c", LIBRARY_ADAPTER, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"the library run failed: {done.stderr[-500:]}")
    return json.loads(done.stdout)


def read_time_ms(repeats: int = 50) -> dict[str, float]:
    """Metadata-reading time (containers + stealth check + writers) for a 2 MB PNG."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (820, 820, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    info = PngImagePlugin.PngInfo()
    graph = json.loads((FIXTURES / "expected.json").read_text())  # any sizeable JSON
    info.add_text("workflow", json.dumps(graph) * 20)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG", pnginfo=info)
    data = buffer.getvalue()
    image = Image.open(io.BytesIO(data))
    image.load()
    from gmi.metadata.stealth import read_stealth

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        entries = read_entries(data, image)
        read_stealth(image)
        probe = Image.new("RGB", (1, 1))
        probe.info["gmi.metadata"] = entries
        read_embedded(probe)
        times.append((time.perf_counter() - started) * 1000)
    return {"png_mb": round(len(data) / 2**20, 2), "median_ms": round(statistics.median(times), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library-python", help="an interpreter with sd-parsers installed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    expected = {
        k: v
        for k, v in json.loads((FIXTURES / "expected.json").read_text()).items()
        if not k.startswith("_")
    }
    paths = [FIXTURES / name for name in expected]
    library = library_readings(args.library_python, paths) if args.library_python else {}
    rows = []
    for name, path in zip(expected, paths, strict=True):
        row = {"file": name, "gmi": score(gmi_reading(path), expected[name])}
        if args.library_python:
            row["sd-parsers"] = score(library.get(str(path)), expected[name])
        rows.append(row)
    timing = read_time_ms()
    if args.json:
        print(json.dumps({"rows": rows, "read_time": timing}, indent=2))
        return 0
    readers = ["gmi"] + (["sd-parsers"] if args.library_python else [])
    print(
        "| file | writer | " + " | ".join(f"{r}: prompt / models / hashes" for r in readers) + " |"
    )
    print("|---|---|" + "---|" * len(readers))
    totals = {r: [0, 0, 0] for r in readers}
    for row in rows:
        cells = []
        for reader in readers:
            s = row[reader]
            marks = ["yes" if s[k] else "NO" for k in ("prompt", "models", "hashes")]
            cells.append(" / ".join(marks))
            for i, k in enumerate(("prompt", "models", "hashes")):
                totals[reader][i] += s[k]
        print(f"| {row['file']} | {expected[row['file']]['writer']} | " + " | ".join(cells) + " |")
    n = len(rows)
    print(
        f"| **right, of {n}** | | "
        + " | ".join(" / ".join(str(t) for t in totals[r]) for r in readers)
        + " |"
    )
    print(f"\nmetadata read time, {timing['png_mb']} MB PNG: {timing['median_ms']} ms (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
