"""`gmi demo` end to end (a smaller zoo to keep CI fast; `make demo` runs all 32 models)."""

import json

from conftest import run_gmi


def test_demo_runs_and_reports_hit_rates(tmp_path):
    result = run_gmi("demo", "--models", "6", "--json", home=tmp_path / "demo")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    summary = out["summary"]
    assert summary["models"] == 6 and summary["queries"] == 6
    assert 0.0 <= summary["top1"] <= summary["top4"] <= 1.0
    assert summary["top4"] >= 0.75  # 6 distinct families/styles: top-4 is easy
    assert {q["model"] for q in out["queries"]} == {q["model"] for q in out["queries"]}
    assert (tmp_path / "demo" / "registry.db").exists()
    # a second run starts from scratch (same result), a foreign folder is never wiped
    again = json.loads(run_gmi("demo", "--models", "6", "--json", home=tmp_path / "demo").stdout)
    assert again["summary"]["top1"] == summary["top1"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    refused = run_gmi("demo", "--models", "2", home=foreign)
    assert refused.returncode == 2 and (foreign / "precious.txt").exists()
