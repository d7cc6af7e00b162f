"""The rooms of docs/architecture.md and their arrows, enforced: a forbidden import anywhere in a module
(top level or inside a function) fails here, naming the module, the line and the rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

JOB_MODULES = ("pipeline.prepare", "pipeline.extract", "pipeline.upsample", "pipeline.synthesize", "pipeline.augment", "pipeline.registry")

# room (a package prefix) -> module prefixes it must never import, and why
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "hierspeech": (("pipeline", "jobs", "ray"), "the models never import the pipeline or Ray"),
    "pipeline.engine": ((*JOB_MODULES, "pipeline.stages", "pipeline.cli", "pipeline.export", "pipeline.report", "pipeline.scoring", "jobs"),
                        "the engine runs any job: it never imports a job, a stage or a front end"),
    "pipeline.io": (("pipeline.engine", "pipeline.stages", "pipeline.cli", *JOB_MODULES, "jobs"), "io never imports the engine (or anything above it)"),
    "pipeline.stages": (("pipeline.cli", *JOB_MODULES, "jobs"), "a stage never imports a job or a front end"),
    "pipeline.errors": (("pipeline", "jobs"), "every room raises these: errors import nothing of the pipeline"),
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # from pipeline import cli
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path = REPO_ROOT) -> list[str]:
    problems = []
    for path in sorted([*root.glob("hierspeech/**/*.py"), *root.glob("pipeline/**/*.py")]):
        name = _module_name(path, root)
        for room, (forbidden, why) in RULES.items():
            if not _within(name, room):
                continue
            for line, imported in _imports(path, root):
                hit = next((f for f in forbidden if _within(imported, f) and not _within(imported, room)), None)
                if hit:
                    problems.append(f"{path.relative_to(root)}:{line}: {name} imports {imported} ({why})")
    return sorted(set(problems))


def test_no_forbidden_arrow_between_rooms() -> None:
    assert violations() == []


def test_the_rule_checker_sees_a_forbidden_arrow(tmp_path: Path) -> None:
    """The checker itself: a planted engine -> job import and a function-level hierspeech -> ray import are found."""
    (tmp_path / "pipeline" / "engine").mkdir(parents=True)
    (tmp_path / "hierspeech").mkdir()
    (tmp_path / "pipeline" / "engine" / "bad.py").write_text("from pipeline.extract import ExtractConfig\n")
    (tmp_path / "hierspeech" / "bad.py").write_text("def f():\n    import ray\n")
    (tmp_path / "pipeline" / "engine" / "fine.py").write_text("from pipeline.io.output import OutputDir\nfrom . import stage\n")
    found = violations(tmp_path)
    assert any("pipeline/engine/bad.py:1" in p and "pipeline.extract" in p for p in found), found
    assert any("hierspeech/bad.py:2" in p and "imports ray" in p for p in found), found
    assert not any("fine.py" in p for p in found), found


@pytest.mark.parametrize("room", sorted(RULES))
def test_every_room_exists(room: str) -> None:
    assert (REPO_ROOT / Path(*room.split("."))).exists() or (REPO_ROOT / Path(*room.split("."))).with_suffix(".py").exists()
