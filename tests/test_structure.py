"""The tree keeps its shape (docs/architecture.md, "Rules the tree keeps"): tools/structure.py
finds no file over 400 lines, no function over 80 lines or 8 parameters, no import loop and
no private import across modules in src/gmi; and it does find each of them when present."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "structure.py"


def run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), str(root)], capture_output=True, text=True, timeout=60
    )


def test_the_package_keeps_its_shape():
    result = run(ROOT / "src" / "gmi")
    assert result.returncode == 0, result.stdout
    assert "0 breach(es), 0 import loop(s)" in result.stdout


def test_each_breach_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import a\n")  # a re-export: fine
    (pkg / "sub" / "a.py").write_text("def f():\n    from pkg.sub.b import g\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.a import f\n"
        "from pkg.c import _hidden\n"
        "def wide(a, b, c, d, e, f, g, h, i):\n    pass\n"
    )
    (pkg / "c.py").write_text("def _hidden():\n" + "    x = 1\n" * 85 + "\n" * 320)
    result = run(pkg)
    assert result.returncode == 1
    out = result.stdout
    assert "import loop: pkg.sub.a <-> pkg.sub.b" in out
    assert "imports the private name pkg.c._hidden" in out
    assert "wide: 9 parameters" in out
    assert "_hidden: 86 lines" in out
    assert "c.py: 406 lines" in out
    assert "pkg.sub <->" not in out  # the package's own re-export is no loop
