"""The import arrows of skyreels_core point down: nodes -> pipelines -> conditioning / models / encoders / sampling ->
checkpoints / nn -> errors / shapes. A package may import only the packages listed for it (and itself)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "skyreels_core"
BASE = {"errors", "shapes"}
ALLOWED = {
    "nn": BASE,
    "checkpoints": BASE,
    "sampling": BASE,
    "conditioning": BASE,
    "models": BASE | {"nn", "checkpoints"},
    "encoders": BASE | {"nn", "checkpoints"},
    "pipelines": BASE | {"sampling", "conditioning", "models"},
}


def _core_imports(path: Path) -> set[str]:
    """Top-level skyreels_core packages a module imports (relative imports, also inside functions)."""
    package = path.relative_to(CORE).parts[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            if node.level == 1 and path.parent != CORE:
                found.add(package)
            elif node.module:
                found.add(node.module.split(".")[0])
    return found


def test_imports_point_down():
    bad = []
    for package, allowed in ALLOWED.items():
        for path in sorted((CORE / package).rglob("*.py")):
            extra = _core_imports(path) - allowed - {package}
            if extra:
                bad.append(f"{path.relative_to(CORE)} imports {sorted(extra)}")
    assert not bad, "imports that run sideways or back up:\n" + "\n".join(bad)


def test_every_core_package_has_a_rule():
    packages = {p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)
