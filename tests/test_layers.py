"""The one-way layering of DESIGN.md, and a cheap `import bmtpt_cli.app` (so `--help` is instant)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bmtpt_cli"

# Lower layers never import higher ones: runtime/artifacts → data → runner → evaluation → svgd/adapter
# (and the few-shot probe, which adapts) → settings → commands → app.
LAYERS = {
    "bmtpt_cli": 0, "bmtpt_cli.errors": 0,
    "bmtpt_cli.runtime": 1, "bmtpt_cli.artifacts": 1,
    "bmtpt_cli.data": 2,
    "bmtpt_cli.runner": 3,
    "bmtpt_cli.evaluation": 4, "bmtpt_cli.transfer.similarity": 4,
    "bmtpt_cli.svgd": 5, "bmtpt_cli.adapter": 5, "bmtpt_cli.evaluation.fewshot": 5,
    "bmtpt_cli.evaluation.grid": 5,
    "bmtpt_cli.transfer": 5, "bmtpt_cli.export": 5,
    "bmtpt_cli.presets": 6, "bmtpt_cli.settings": 6, "bmtpt_cli.console": 6, "bmtpt_cli.world": 6,
    "bmtpt_cli.commands": 7,
    "bmtpt_cli.app": 8, "bmtpt_cli.__main__": 8,
}
CORE_FORBIDDEN = ("typer", "rich", "pydantic_settings", "pydantic")


def _layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rsplit(".", 1)[0]
    return LAYERS[module]


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("module,path", list(_modules()), ids=[m for m, _ in _modules()])
def test_module_imports_only_lower_layers(module, path):
    own = _layer(module)
    for imported in _imports(path):
        if imported.startswith("bmtpt_cli"):
            assert _layer(imported) <= own, f"{module} (layer {own}) imports {imported} (layer {_layer(imported)})"
            if module.startswith("bmtpt_cli.svgd"):
                assert not imported.startswith("bmtpt_cli.adapter")
            if module.startswith("bmtpt_cli.adapter"):
                assert not imported.startswith("bmtpt_cli.svgd")
        elif own <= 5:
            assert imported.split(".")[0] not in CORE_FORBIDDEN, f"core module {module} imports {imported}"


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
