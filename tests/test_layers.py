"""The layers contract: data flows down (specs < plans < costs < lowering < engine < results <
front), checked by import-linter with the contract in pyproject.toml; and only the engine
calls the compiled core."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import podsim

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(podsim.__file__).resolve().parent
LINT = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))


def lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=package_parent,
        timeout=120,
    )


def copy_of_package(tmp_path: Path) -> Path:
    copy = tmp_path / "podsim"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.so", "__pycache__", "data"))
    return copy


def test_the_package_keeps_its_layers(tmp_path):
    result = lint(copy_of_package(tmp_path).parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("specs/chips.py", "from podsim.plans import training"),
        ("costs/memory.py", "from podsim.lowering import program"),
        ("lowering/layout.py", "from podsim.engine import core"),
        ("engine/core.py", "from podsim.results import training"),
        ("units.py", "from podsim.specs import chips"),
    ],
)
def test_an_upward_import_breaks_the_contract(tmp_path, module, upward):
    copy = copy_of_package(tmp_path)
    target = copy / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{upward}  # noqa\n")
    result = lint(copy.parent)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_only_the_engine_imports_the_compiled_core():
    importers = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module == "podsim":
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name.removeprefix("podsim.") for alias in node.names]
            if "_core" in names:
                importers.add(path.relative_to(PACKAGE).parts[0])
    assert importers == {"engine"}
