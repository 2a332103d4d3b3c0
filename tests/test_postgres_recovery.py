"""PostgreSQL store, reliability round three: no password in any answer (D2, every libpq
spelling of it, CLI and HTTP) and replicas that resync after the database is restored from a
backup (D4). Against a real PostgreSQL server (test_postgres.postgres_server)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from test_postgres import _pg_bin, copy_models, fresh_database, pg_url, postgres_server
from test_server import running_server

from conftest import SMALL_ZOO, run_gmi
from gmi.registry.dsn import redacted, scrubbed

__all__ = ["pg_url"]  # the module-scoped server fixture, shared
SECRET = "s3cretPW"
SPELLINGS = [
    f"postgresql://gmi:{SECRET}@127.0.0.1:9/nothing",
    f"postgresql://:{SECRET}@127.0.0.1:9/nothing",
    f"postgresql://gmi@127.0.0.1:9/nothing?password={SECRET}",
    f"postgresql://gmi@127.0.0.1:9/nothing?sslmode=disable&password={SECRET}&x=1",
    f"postgresql://gmi@127.0.0.1:9/nothing?passw%6Frd={SECRET}",
    f"postgres://gmi:{SECRET}@127.0.0.1:9/nothing",
]


@pytest.mark.parametrize("url", SPELLINGS)
def test_no_spelling_of_the_password_is_shown(url):
    assert SECRET not in redacted(url)
    assert "127.0.0.1:9" in redacted(url)
    assert SECRET not in scrubbed(f"could not connect to {url} (password {SECRET})", url)
    assert SECRET not in redacted(f"host=127.0.0.1 password='{SECRET} x' dbname=gmi")


@pytest.mark.parametrize("url", SPELLINGS[1:4])
def test_cli_never_prints_the_password(url, tmp_path):
    done = run_gmi("--store", url, "models", home=tmp_path / "shared")
    assert done.returncode in (2, 9), done.stderr  # unreachable (9) or unparsable (2)
    assert SECRET not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_http_body_never_holds_the_database_url(pristine_hub, tmp_path):
    """While PostgreSQL is down every anonymous client got the DSN (and its ?password=) in
    the 503 body; now the body says the database is unavailable, the URL goes to the log."""
    with postgres_server() as base:
        url = fresh_database(base, "leak") + f"&password={SECRET}"
        home = tmp_path / "shared"
        copy_models(pristine_hub, url, home, names=SMALL_ZOO[:2])
        env = {"GMI_STORE": url, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        with running_server(home, extra_env=env) as served:
            socket_dir = base.split("host=")[1].split("&")[0]
            subprocess.run(
                ["runuser", "-u", "postgres", "--", _pg_bin("pg_ctl"), "-D",
                 f"{socket_dir}/data", "-m", "immediate", "stop"]
                if Path("/usr/sbin/runuser").exists() and _is_root() else
                [_pg_bin("pg_ctl"), "-D", f"{socket_dir}/data", "-m", "immediate", "stop"],
                check=True, capture_output=True,
            )  # fmt: skip
            answer = httpx.get(f"{served}/api/models", timeout=60)
            assert answer.status_code == 503, answer.text
            assert SECRET not in answer.text and "postgresql" not in answer.text
            assert answer.json()["error"].startswith("the hub's registry database")


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def test_a_replica_resyncs_after_the_database_is_restored_from_a_backup(
    pg_url, pristine_hub, query_images, tmp_path, monkeypatch
):
    """D4: the mirror remembered the change version it had copied; a restored database
    reuses lower numbers, so the replica ranked a model the database lacks and never the new
    ones, even after a restart. The change stamp tells it the log is another one."""
    from gmi.hub import Hub
    from gmi.registry.store import Registry

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    url = fresh_database(pg_url, "restore")
    home = tmp_path / "shared"
    writer = copy_models(pristine_hub, url, home, names=SMALL_ZOO[:2])
    replica = Hub(home, store=url)
    assert sorted(replica.index().names) == sorted(SMALL_ZOO[:2])
    backup = subprocess.run(
        [_pg_bin("pg_dump"), "--no-owner", "-d", url], check=True, capture_output=True
    ).stdout
    source = Registry(pristine_hub)
    spec = source.load_spec(source.get(SMALL_ZOO[2]))
    writer.registry().add("after-backup", spec)
    assert "after-backup" in replica.index().names  # the replica copied that change
    admin = pg_url
    subprocess.run(
        [_pg_bin("psql"), "-q", "-d", admin, "-c", "DROP DATABASE restore WITH (FORCE)",
         "-c", "CREATE DATABASE restore"], check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [_pg_bin("psql"), "-q", "-d", url], input=backup, check=True, capture_output=True
    )
    Hub(home, store=url).registry().add("after-restore", spec)
    database = sorted(Hub(home, store=url).registry().list_names())
    assert database == sorted([*SMALL_ZOO[:2], "after-restore"])
    assert sorted(replica.index().names) == database
    restarted = Hub(home, store=url)
    assert sorted(restarted.index().names) == database
    top = restarted.identify([query_images[SMALL_ZOO[2]]], top=3)[0].results
    assert "after-backup" not in [r.model for r in top]
