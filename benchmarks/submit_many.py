"""`gmi submit-many` against one-by-one `gmi submit`: same spec bytes, time, and recovery.

    .venv/bin/python benchmarks/submit_many.py [--models 50] [--workers 2] [--kill] [--json]
        [--work DIR]

Exports --models zoo models (the 32 built-in, then the held-out ones) as imagefolders of their
48 spec images each, then submits them into fresh registries:

- `one_by_one`: one `gmi submit NAME --images DIR` process per model, as a script would;
- `in_process`, `pool`, `ray`: `gmi submit-many MANIFEST` without --ray, with --workers N, and
  with --ray local --workers N (a private local Ray instance);
- with --kill: `--ray local --retries 0` again, one busy Ray worker SIGKILLed mid-run, then a
  re-run of the same command.

Every run's specs are compared with the one-by-one registry by the sha256 of their arrays
(`identical`: models whose bytes match / models). Prints one JSON object with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gmi.imagefolder import write_imagefolder
from gmi.registry.store import Registry
from gmi.spec.specification import arrays_sha256
from gmi.zoo import load_zoo
from gmi.zoo.export import spec_images

GMI = [sys.executable, "-m", "gmi.cli"]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ray_tasks import running_task  # noqa: E402  (the tests' helper)


def export_models(root: Path, count: int) -> list[dict]:
    rows = []
    catalogues = [(c, name) for c in ("builtin", "heldout") for name in sorted(load_zoo(c))]
    if count > len(catalogues):
        raise SystemExit(f"the zoo has {len(catalogues)} models; ask for at most that")
    for catalogue, name in catalogues[:count]:
        folder = root / "models" / f"{catalogue}-{name}"
        if not (folder / "metadata.jsonl").exists():
            images, prompts = spec_images(name, catalogue=catalogue)
            write_imagefolder(folder, images, prompts)
        rows.append({"name": f"{catalogue}/{name}", "images": str(folder)})
    return rows


def digests(home: Path) -> dict[str, str]:
    registry = Registry(home, create=False)
    return {r.name: arrays_sha256(registry.load_spec(r).arrays()) for r in registry.list()}


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill", action="store_true", help="also the killed-worker run")
    parser.add_argument("--skip-one-by-one", action="store_true")
    parser.add_argument("--work", type=Path, help="keep exports and registries here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="gmi-submit-many-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = export_models(work, args.models)
    manifest = work / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out: dict = {
        "models": len(rows),
        "images_per_model": 48,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "runs": {},
    }

    reference = work / "one-by-one"
    if not args.skip_one_by_one:
        started = time.perf_counter()
        for row in rows:
            seconds, done = timed(
                [
                    *GMI,
                    "--home",
                    str(reference),
                    "submit",
                    row["name"],
                    "--images",
                    row["images"],
                    "--quiet",
                ]
            )
            if done.returncode != 0:
                raise SystemExit(done.stderr)
        out["runs"]["one_by_one"] = {"seconds": round(time.perf_counter() - started, 1)}
    expected = digests(reference)

    def compare(label: str, home: Path, seconds: float, summary: dict) -> None:
        got = digests(home)
        same = sum(got.get(name) == sha for name, sha in expected.items())
        out["runs"][label] = {
            "seconds": round(seconds, 1),
            "submitted": len(summary.get("submitted", [])),
            "failed": summary.get("failed", []),
            "identical": f"{same}/{len(expected)}",
        }
        print(json.dumps({label: out["runs"][label]}), file=sys.stderr)

    for label, extra in (
        ("in_process", []),
        ("pool", ["--workers", str(args.workers)]),
        ("ray", ["--ray", "local", "--workers", str(args.workers)]),
    ):
        home = work / label
        seconds, done = timed(
            [*GMI, "--home", str(home), "submit-many", str(manifest), *extra, "--json", "--quiet"]
        )
        compare(label, home, seconds, json.loads(done.stdout))

    if args.kill:
        home = work / "ray-killed"
        cmd = [
            *GMI,
            "--home",
            str(home),
            "submit-many",
            str(manifest),
            "--ray",
            "local",
            "--workers",
            str(args.workers),
            "--retries",
            "0",
            "--json",
            "--quiet",
        ]
        started = time.perf_counter()
        driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(20)  # well into the run
        victim = None
        while victim is None and driver.poll() is None:
            victim = running_task(driver.pid)
            time.sleep(0.1)
        if victim is not None:
            time.sleep(0.5)
            os.kill(victim, signal.SIGKILL)
        stdout, _ = driver.communicate()
        killed = json.loads(stdout)
        first_s = time.perf_counter() - started
        seconds, done = timed(cmd)
        rerun = json.loads(done.stdout)
        compare("ray_killed_then_rerun", home, first_s + seconds, rerun)
        out["runs"]["ray_killed_then_rerun"].update(
            killed_run_failed=killed["failed"],
            killed_run_submitted=len(killed["submitted"]),
            rerun_submitted=rerun["submitted"],
            rerun_skipped=len(rerun["skipped"]),
        )
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for label, run in out["runs"].items():
            print(label, run)


if __name__ == "__main__":
    main()
