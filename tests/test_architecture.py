"""The dependency contracts of pyproject.toml ([tool.importlinter]) hold: one direction between the packages,
quickfix in sessions/ only, no I/O in the domain, no import cycles. A wrong-way import fails the suite (and so
.ci/run) with import-linter's report naming the import chain.

import-linter runs in a subprocess: it configures logging for itself, which would disable this process's
loggers for the tests that follow."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"


def lint(config: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--config", str(config), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
                                            "PYTHONPATH": str(cwd)})


def test_the_import_contracts_hold():
    result = lint(ROOT / "pyproject.toml", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_wrong_way_import_breaks_a_contract(tmp_path):
    """The check can fail: a layers contract over a package tree with one import pointing up."""
    for pkg, body in {"low": "import high\n", "high": ""}.items():
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text(body)
    (tmp_path / "contracts.toml").write_text(
        '[tool.importlinter]\nroot_packages = ["high", "low"]\n'
        '[[tool.importlinter.contracts]]\nname = "high over low"\ntype = "layers"\nlayers = ["high", "low"]\n')
    result = lint(tmp_path / "contracts.toml", tmp_path)
    assert result.returncode != 0 and "low -> high" in result.stdout, result.stdout + result.stderr
