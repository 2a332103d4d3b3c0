"""`gmi submit-many`, reliability round three: generated images follow the generator that
made them (D5), a model's digest is of the bytes that were encoded (D6), runs that meet on
one home (D18), manifest checks before any work (D18) and pool workers that die with their
driver (D11)."""

from __future__ import annotations

import json
from pathlib import Path

from test_submit_many import spec_digests, write_manifest

from gmi.hub import Hub
from gmi.submit.manifest import read_manifest
from gmi.submit.many import submit_many

PROMPTS = "a red cat\na blue house at night\na dog in a forest\na castle by the sea\n"


def _run(home: Path, manifest: Path, rows: list[dict], **kwargs):
    write_manifest(manifest, rows)
    return submit_many(Hub(home), read_manifest(manifest), progress=False, **kwargs)


def test_generated_images_are_never_reused_across_generators_or_names(tmp_path):
    """D5: images were resumed by (file, prompt) from HUB/generated/<name>, which remove
    keeps: a model removed and re-submitted with another generator reused the old images
    ("generated: 0"), and `a/b` and `a__b` shared one folder (identical specs)."""
    (tmp_path / "p.txt").write_text(PROMPTS)
    home = tmp_path / "hub"
    first = _run(
        home,
        tmp_path / "a.jsonl",
        [
            {"name": "m", "generator": "zoo:flat-base", "prompts": "p.txt"},
            {"name": "ref", "generator": "zoo:neon-base", "prompts": "p.txt"},
        ],
    )
    assert first.generated == 8 and not first.failed
    Hub(home).remove("m")
    again = _run(
        home,
        tmp_path / "b.jsonl",
        [{"name": "m", "generator": "zoo:neon-base", "prompts": "p.txt"}],
    )
    assert again.generated == 4, "the removed model's images were reused"
    digests = spec_digests(home)
    assert digests["m"] == digests["ref"]
    resumed = _run(  # the same generator again: its kept images are resumed
        tmp_path / "hub2",
        tmp_path / "c.jsonl",
        [{"name": "m", "generator": "zoo:neon-base", "prompts": "p.txt",
          "keep_images": str(home / "generated" / "m")}],
    )  # fmt: skip
    assert resumed.generated == 0
    both = _run(
        tmp_path / "hub3",
        tmp_path / "d.jsonl",
        [
            {"name": "a/b", "generator": "zoo:flat-base", "prompts": "p.txt"},
            {"name": "a__b", "generator": "zoo:pixel-base", "prompts": "p.txt"},
        ],
    )
    assert both.generated == 8 and not both.failed
    digests = spec_digests(tmp_path / "hub3")
    assert digests["a/b"] != digests["a__b"]
    assert len(list((tmp_path / "hub3" / "generated").iterdir())) == 2
    meta = (tmp_path / "hub3" / "generated" / "a~b" / "metadata.jsonl").read_text()
    assert json.loads(meta.splitlines()[0])["generator"].count("zoo:flat-base") == 1


def test_a_folder_changed_during_the_run_is_recorded_under_what_was_encoded(tmp_path, submissions):
    """D6: the driver digested the folders, then the tasks read them again: a folder swapped
    in between was stored with the NEW images under the OLD digest, so a re-run failed it
    ("other inputs") or, once the folder was restored, skipped it with the wrong spec."""
    import shutil

    from gmi.submit.executors import InProcess

    folder = tmp_path / "imgs"
    shutil.copytree(submissions["flat-base"], folder)

    class SwapFirst(InProcess):  # the swap happens after the digests, before the task
        def run(self, fn, jobs, gpu=lambda _: False):
            shutil.rmtree(folder)
            shutil.copytree(submissions["ink-base"], folder)
            yield from super().run(fn, jobs, gpu)

    home = tmp_path / "hub"
    write_manifest(tmp_path / "m.jsonl", [{"name": "late", "images": str(folder)}])
    entries = read_manifest(tmp_path / "m.jsonl")
    version_a = entries[0].inputs_digest()
    done = submit_many(Hub(home), entries, SwapFirst(), progress=False)
    assert done.submitted == ["late"]
    recorded = Hub(home).registry().get("late").extra["inputs"]
    assert recorded == entries[0].inputs_digest() != version_a  # of the images encoded
    again = submit_many(Hub(home), entries, progress=False)  # folder as encoded: skipped
    assert again.skipped == ["late"] and not again.failed
    shutil.rmtree(folder)
    shutil.copytree(submissions["flat-base"], folder)  # version A back: not skipped
    back = submit_many(Hub(home), entries, progress=False)
    assert back.skipped == [] and "other inputs" in back.failed[0]["error"]


def test_manifest_problems_are_found_before_any_work(tmp_path, submissions):
    """D18: an over-long description failed only after encoding, and CSV cells past the
    header were dropped silently; D15: a NUL in a description was a traceback later."""
    import pytest

    from gmi.errors import InvalidInputError

    folder = str(submissions["flat-base"])
    cases = {
        "long.jsonl": (json.dumps({"name": "a", "images": folder, "description": "x" * 4001})
                       + "\n", "description longer than 4000"),
        "nul.jsonl": (json.dumps({"name": "a", "images": folder, "description": "a\x00b"})
                      + "\n", "NUL"),
        "extra.csv": (f"name,images,description\na,{folder},flat, simple\n",
                      "1 more cells than the header has columns"),
    }  # fmt: skip
    for file_name, (text, expected) in cases.items():
        (tmp_path / file_name).write_text(text)
        with pytest.raises(InvalidInputError, match=expected):
            read_manifest(tmp_path / file_name)


def test_non_utf8_text_arguments_are_one_line(tmp_path, pristine_hub, query_images):
    """D15: a non-UTF-8 --description or --prompt (a Latin-1 terminal) was a traceback."""
    import os

    from conftest import hub_copy, run_gmi

    home = hub_copy(pristine_hub, tmp_path / "hub")
    latin1 = os.fsdecode(b"caf\xe9")
    for args in (
        ["identify", str(query_images["ink-base"]), "--prompt", latin1],
        ["submit", "cafe", "--images", str(query_images["ink-base"].parent), "--description",
         latin1],
    ):  # fmt: skip
        done = run_gmi(*args, home=home)
        assert done.returncode == 2, done.stderr
        assert "not valid UTF-8" in done.stderr and "Traceback" not in done.stderr
        assert done.stderr.strip().count("\n") == 0


def test_two_runs_on_one_home_share_the_work(tmp_path, submissions):
    """D18: two concurrent runs of one manifest each exited 1, reporting the other's models
    as "already exists". A model the other run stored with the same inputs is skipped."""
    import subprocess
    import sys

    from conftest import SMALL_ZOO

    manifest = write_manifest(
        tmp_path / "m.jsonl", [{"name": m, "images": str(submissions[m])} for m in SMALL_ZOO]
    )
    home = tmp_path / "hub"
    command = [sys.executable, "-m", "gmi.cli", "--home", str(home), "submit-many",
               str(manifest), "--json"]  # fmt: skip
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()[-2000:]
        summary = json.loads(out)
        assert sorted(summary["submitted"] + summary["skipped"]) == sorted(SMALL_ZOO)
        assert summary["failed"] == []
    third = submit_many(Hub(home), read_manifest(manifest), progress=False)
    assert sorted(third.skipped) == sorted(SMALL_ZOO)


def test_ray_at_a_listening_non_ray_port_is_exit_10_at_once(tmp_path, submissions):
    """D10: an HTTP listener passed the TCP probe, then Ray retried for ever (615 s seen).
    The probe now asks for a gRPC (HTTP/2) answer: one line, exit 10, in seconds."""
    import http.server
    import threading
    import time

    from conftest import run_gmi

    web = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    manifest = write_manifest(
        tmp_path / "m.jsonl", [{"name": "flat", "images": str(submissions["flat-base"])}]
    )
    started = time.monotonic()
    try:
        done = run_gmi("submit-many", str(manifest), "--ray", f"127.0.0.1:{web.server_port}",
                       home=tmp_path / "hub")  # fmt: skip
    finally:
        web.shutdown()
    assert done.returncode == 10, done.stderr
    assert "not Ray" in done.stderr and done.stderr.count("\n") == 1
    assert time.monotonic() - started < 60
    assert not (tmp_path / "hub" / "registry.db").exists()


def test_pool_workers_die_with_a_killed_driver(tmp_path):
    """D11: a SIGKILLed `submit-many --workers 2` driver left its two pool workers (about
    700 MB each) blocked for ever. They watch their parent and end with it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "p.txt").write_text("".join(f"a red cat number {i}\n" for i in range(40)))
    zoo = ["flat-base", "ink-base", "neon-base", "pixel-base"]
    rows = [
        {"name": f"m{i}", "generator": f"zoo:{z}", "prompts": "p.txt"} for i, z in enumerate(zoo)
    ]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    home = tmp_path / "hub"
    first = submit_many(Hub(home), read_manifest(manifest)[:1], progress=False)  # fixes gamma
    assert first.submitted == ["m0"]
    command = [sys.executable, "-m", "gmi.cli", "--home", str(home), "submit-many",
               str(manifest), "--workers", "2", "--quiet"]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
        workers = _spawned_children(driver.pid)
    assert len(workers) == 2, "the pool's two workers were not seen"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, f"pool workers {left} outlived their driver"


def _spawned_children(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children if b"spawn_main" in _cmdline(int(c))]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_rerun_stats_unchanged_folders_and_reads_changed_ones(tmp_path, submissions,
                                                                monkeypatch):  # fmt: skip
    """D18: every re-run read every image again to digest it (about 12 minutes for a
    100,000-line manifest before the first task). Digests are cached by each file's path,
    size, mtime and inode; a changed file is read again."""
    import shutil

    import gmi.submit.manifest as manifest_module

    folders = {}
    for name in ("flat-base", "ink-base"):
        folders[name] = tmp_path / name
        shutil.copytree(submissions[name], folders[name])
    manifest = write_manifest(
        tmp_path / "m.jsonl", [{"name": n, "images": str(f)} for n, f in folders.items()]
    )
    home = tmp_path / "hub"
    first = submit_many(Hub(home), read_manifest(manifest), progress=False)
    assert sorted(first.submitted) == sorted(folders)
    reads: list[Path] = []
    real = manifest_module.read_image_bytes

    def counted(path: Path) -> bytes:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(manifest_module, "read_image_bytes", counted)
    again = submit_many(Hub(home), read_manifest(manifest), progress=False)
    assert sorted(again.skipped) == sorted(folders) and reads == []
    image = sorted(folders["ink-base"].glob("*.png"))[0]
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes, a newer mtime
    image.write_bytes(bytes(data))
    changed = submit_many(Hub(home), read_manifest(manifest), progress=False)
    assert changed.skipped == ["flat-base"] and "other inputs" in changed.failed[0]["error"]
    assert reads and all(p.parent == folders["ink-base"] for p in reads)
