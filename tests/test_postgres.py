"""The PostgreSQL store against a real PostgreSQL server (Debian's `postgresql` package; .ci/run
installs it), started here on a private Unix socket: the catalogue there, the spec files in a
shared folder, and two `gmi serve` replicas on one store (each with its own local mirror)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from test_server import TOKEN, _zip_of, running_server

from conftest import SMALL_ZOO, run_gmi
from gmi.settings import HubSettings


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is missing: .ci/run installs Debian's postgresql")
    return found


@contextlib.contextmanager
def postgres_server():
    """A throw-away PostgreSQL cluster on a Unix socket (as the `postgres` account when this
    runs as root: PostgreSQL refuses root). Yields its URL."""
    root = Path(tempfile.mkdtemp(prefix="gmi-pg-"))
    root.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", 5432
    subprocess.run(
        [*as_user, _pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "gmi"],
        check=True,
        capture_output=True,
    )
    options = f"-k {root} -c listen_addresses='' -p {port} -c fsync=off"
    subprocess.run(
        [*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
         "-w", "start"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://gmi@/postgres?host={root}&port={port}"
    finally:
        subprocess.run(
            [*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        yield url


def fresh_database(url: str, name: str) -> str:
    """A new empty database on the server: each test its own store."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.replace("/postgres?", f"/{name}?")


def copy_models(pristine: Path, url: str, home: Path, names=SMALL_ZOO[:3]):
    """A PostgreSQL store holding the pristine hub's models (specs and settings copied)."""
    from gmi.hub import Hub
    from gmi.registry.store import Registry

    source = Registry(pristine)
    hub = Hub(home, store=url)
    store = hub.registry()
    store.set_settings(source.settings())
    for name in names:
        record = source.get(name)
        store.add(name, source.load_spec(record), description=f"the {name} model")
    return hub


def test_postgres_store_catalogue_identify_and_a_second_process(
    pg_url, pristine_hub, query_images, tmp_path
):
    from gmi.hub import Hub

    url = fresh_database(pg_url, "catalogue")
    home = tmp_path / "shared"
    hub = copy_models(pristine_hub, url, home)
    store = hub.registry()
    assert store.count() == 3 and store.list_names() == sorted(SMALL_ZOO[:3])
    assert store.descriptions(["ink-base"]) == {"ink-base": "the ink-base model"}
    assert [m.model for m in hub.identify([query_images["photo-base"]], top=1)[0].results] == [
        "photo-base"
    ]
    # what the SQLite registry ranks is what the PostgreSQL store ranks
    want = Hub(pristine_hub).identify([query_images[m] for m in SMALL_ZOO], top=3)
    got = hub.identify([query_images[m] for m in SMALL_ZOO], top=3)
    assert [[m.model for m in r.results] for r in got] == [
        [m.model for m in r.results] for r in want
    ]
    # another process, its own mirror (another machine's cache), sees a removal at once
    hub.registry().remove("photo-base")
    env = {"XDG_CACHE_HOME": str(tmp_path / "other-cache")}
    out = subprocess.run(
        [*run_gmi_command(url, home), "identify", str(query_images["photo-base"]), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "photo-base" not in [m["model"] for m in json.loads(out.stdout)[0]["results"]]
    assert "photo-base" not in [
        m.model for m in hub.identify([query_images["photo-base"]], top=3)[0].results
    ]


def run_gmi_command(url: str, home: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "gmi.cli", "--store", url, "--home", str(home)]


def test_two_service_replicas_share_one_store(
    pg_url, pristine_hub, submissions, query_images, tmp_path
):
    url = fresh_database(pg_url, "replicas")
    home = tmp_path / "shared"
    copy_models(pristine_hub, url, home)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    neon = [("images", ("q.jpg", query_images["neon-base"].read_bytes(), "image/jpeg"))]
    with (
        running_server(home, extra_env={"GMI_STORE": url, "XDG_CACHE_HOME": str(tmp_path / "a")})
        as one,
        running_server(home, extra_env={"GMI_STORE": url, "XDG_CACHE_HOME": str(tmp_path / "b")})
        as two,
    ):  # fmt: skip
        before = httpx.post(f"{two}/api/identify", files=neon, timeout=60).json()[0]
        assert "neon-base" not in [r["model"] for r in before["results"]]
        added = httpx.post(
            f"{one}/api/models",
            data={"name": "neon-base"},
            files={"archive": ("neon.zip", _zip_of(submissions["neon-base"]), "application/zip")},
            headers=auth,
            timeout=180,
        )
        assert added.status_code == 201, added.text
        after = httpx.post(f"{two}/api/identify", files=neon, timeout=60).json()[0]
        assert after["results"][0]["model"] == "neon-base"
        assert httpx.get(f"{two}/api/models").headers["X-Total-Count"] == "4"
        removed = httpx.delete(f"{two}/api/models/ink-base", headers=auth, timeout=60)
        assert removed.status_code == 200, removed.text
        ink = [("images", ("q.jpg", query_images["ink-base"].read_bytes(), "image/jpeg"))]
        listed = httpx.post(f"{one}/api/identify", files=ink, timeout=60).json()[0]
        assert "ink-base" not in [r["model"] for r in listed["results"]]


@pytest.mark.parametrize(("setting", "kept"), [("space", "identity"), ("space_dims", "0")])
def test_stores_from_an_older_gmi_keep_their_space(pg_url, pristine_hub, tmp_path, setting, kept):
    """As the SQLite registry's migrations 5 and 6: a store written before a setting existed
    keeps ranking as it did (the default would refit it into another space)."""
    import psycopg

    from gmi.registry.postgres import PostgresStore

    url = fresh_database(pg_url, f"older_{setting}")
    copy_models(pristine_hub, url, tmp_path / "shared")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM gmi_settings WHERE key = %s", (setting,))
    reopened = PostgresStore(url, tmp_path / "shared", create=False).settings()
    assert reopened[setting] == kept
    new = fresh_database(pg_url, f"newer_{setting}")
    store = PostgresStore(new, tmp_path / "new")
    assert store.settings() == {}  # an empty store gets nothing until it is created
    default = HubSettings(encoder="synthetic").to_strings()
    store.set_settings(default)
    assert PostgresStore(new, tmp_path / "new").settings()[setting] == default[setting]


def test_unreachable_postgres_is_one_line_without_the_password(tmp_path):
    url = "postgresql://gmi:s3cret@127.0.0.1:9/nothing"
    done = run_gmi("--store", url, "models", home=tmp_path / "shared")
    assert done.returncode == 9, done.stderr
    assert "s3cret" not in done.stderr and "127.0.0.1:9" in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr


def test_reencode_switches_a_postgres_hub_and_another_replica_follows(
    pg_url, submissions, query_images, tmp_path
):
    """One transaction in PostgreSQL (every row and the encoder settings); a replica with its
    own mirror packs the new rows anew and ranks with the new encoder."""
    from gmi.hub import Hub
    from gmi.submit.reencode import reencode

    url = fresh_database(pg_url, "reencode")
    home = tmp_path / "shared"
    hub = Hub(home, store=url)
    for name in SMALL_ZOO[:3]:
        hub.submit_folder(name, submissions[name], progress=False)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "replica")}
    query = str(query_images["photo-base"])
    before = subprocess.run([*run_gmi_command(url, home), "identify", query, "--json"],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert before.returncode == 0, before.stderr
    result = reencode(Hub(home, store=url), "offline:style", progress=False)
    assert result.models == 3
    assert {r.encoder for r in Hub(home, store=url).models()} == {"offline:style"}
    after = subprocess.run([*run_gmi_command(url, home), "identify", query, "--json"],
                           capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)[0]["results"][0]["model"] == "photo-base"
    info = subprocess.run([*run_gmi_command(url, home), "info", "photo-base", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert json.loads(info.stdout)["encoder"] == "offline:style"
    assert json.loads(info.stdout)["image_dim"] == Hub(home, store=url).settings().image_dim
