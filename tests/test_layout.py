"""The package's layout: imports go one way, apps -> evaluation -> inference, and
apps -> training, datasets; everything builds on core, which imports none of them."""

import ast
from pathlib import Path

import colorunet

ROOT = Path(colorunet.__file__).parent
#: The folders each folder may import from (besides itself).
ALLOWED = {
    "core": set(),
    "inference": {"core"},
    "training": {"core"},
    "datasets": {"core"},
    "evaluation": {"core", "inference"},
    "apps": {"core", "inference", "training", "datasets", "evaluation"},
}


def _imports(path: Path, package: list[str]):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            yield base + (node.module.split(".") if node.module else [])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("colorunet."):
            yield node.module.split(".")


def test_every_module_is_in_a_part_and_imports_point_down():
    loose = sorted(p.name for p in ROOT.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert loose == [], f"modules outside the subpackages: {loose}"
    wrong = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 2:
            continue
        here = parts[0]
        for target in _imports(path, ["colorunet", *parts[:-1]]):
            there = target[1] if len(target) > 1 else None
            if there in ALLOWED and there != here and there not in ALLOWED[here]:
                wrong.append(f"{path.relative_to(ROOT)} imports {'.'.join(target)}")
    assert wrong == []
