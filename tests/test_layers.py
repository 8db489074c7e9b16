"""The one-way layering of DESIGN.md, and a cheap `import bmtpt_cli.app` (so `--help` is instant)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bmtpt_cli"

# The one-way layering of DESIGN.md, stated once: a module imports only its own layer or lower ones.
# Every package and top-level module of bmtpt_cli must be placed here (an unplaced one fails).
LAYER_ORDER = (
    ("bmtpt_cli", "bmtpt_cli.errors"),  # "bmtpt_cli": the package's own __init__ (its version)
    ("bmtpt_cli.runtime", "bmtpt_cli.artifacts"),
    ("bmtpt_cli.data",),
    ("bmtpt_cli.runner",),
    ("bmtpt_cli.scoring",),  # scoring prompts on examples, and prompt similarity
    ("bmtpt_cli.source", "bmtpt_cli.adapter"),  # the SVGD engine; the adaptation loop
    ("bmtpt_cli.methods",),  # one module per transfer method, and the registry
    ("bmtpt_cli.jobs", "bmtpt_cli.experiments", "bmtpt_cli.export"),  # one command's run; grids, tables, matrices
    ("bmtpt_cli.presets", "bmtpt_cli.settings", "bmtpt_cli.console", "bmtpt_cli.world", "bmtpt_cli.reproduce"),
    ("bmtpt_cli.commands",),
    ("bmtpt_cli.app", "bmtpt_cli.__main__"),
)
LAYERS = {name: number for number, names in enumerate(LAYER_ORDER) for name in names}
SAME_LAYER_APART = (("bmtpt_cli.source", "bmtpt_cli.adapter"),)
"""Packages of one layer that must not import each other (source training and target adaptation)."""
CORE_LAYER = LAYERS["bmtpt_cli.experiments"]
CORE_FORBIDDEN = ("typer", "rich", "pydantic_settings", "pydantic")


def _layer(module: str) -> int:
    """The layer of a module: its own entry, else its top-level package's (`bmtpt_cli.X`); never the
    root's (the root entry is the package's `__init__` only)."""
    if module in LAYERS:
        return LAYERS[module]
    top = ".".join(module.split(".")[:2])
    if top == module or top not in LAYERS:
        raise AssertionError(f"{module} is in no layer: add its package to LAYER_ORDER in tests/test_layers.py")
    return LAYERS[top]


def _modules(package: Path = PACKAGE):
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def import_problems(module: str, path: Path) -> list[str]:
    """What is wrong with a module's imports: one that runs back up the layers, one between packages
    kept apart, a core module importing the command-line libraries."""
    problems = []
    own = _layer(module)
    for imported in _imports(path):
        if imported.startswith("bmtpt_cli"):
            if _layer(imported) > own:
                problems.append(f"{module} (layer {own}) imports {imported} (layer {_layer(imported)})")
            for first, second in SAME_LAYER_APART:
                for a, b in ((first, second), (second, first)):
                    if module.startswith(a) and imported.startswith(b):
                        problems.append(f"{module} imports {imported}: {a} and {b} are kept apart")
        elif own <= CORE_LAYER and imported.split(".")[0] in CORE_FORBIDDEN:
            problems.append(f"core module {module} imports {imported}")
    return problems


@pytest.mark.parametrize("module,path", list(_modules()), ids=[m for m, _ in _modules()])
def test_module_imports_only_lower_layers(module, path):
    assert import_problems(module, path) == []


def test_an_unplaced_package_and_an_import_back_up_are_caught(tmp_path):
    package = tmp_path / "bmtpt_cli"
    (package / "newthing").mkdir(parents=True)
    (package / "newthing" / "__init__.py").write_text("")
    (package / "runner").mkdir()
    (package / "runner" / "uses_methods.py").write_text("from bmtpt_cli.methods import registry\n")
    modules = dict(_modules(package))
    with pytest.raises(AssertionError, match="bmtpt_cli.newthing is in no layer"):
        import_problems("bmtpt_cli.newthing", modules["bmtpt_cli.newthing"])
    (problem,) = import_problems("bmtpt_cli.runner.uses_methods", modules["bmtpt_cli.runner.uses_methods"])
    assert "imports bmtpt_cli.methods" in problem
    (package / "source" ).mkdir()
    (package / "source" / "x.py").write_text("import bmtpt_cli.adapter.train\n")
    assert "kept apart" in import_problems("bmtpt_cli.source.x", package / "source" / "x.py")[0]


def test_every_package_of_bmtpt_cli_is_placed():
    tops = {".".join(m.split(".")[:2]) for m, _ in _modules()}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


def test_every_module_imports_on_its_own():
    """Each module imported first, with no bmtpt_cli module loaded before it, so an import cycle shows."""
    modules = [m for m, _ in _modules() if m != "bmtpt_cli.__main__"]
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m == 'bmtpt_cli' or m.startswith('bmtpt_cli.')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, bmtpt_cli.app; print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
