"""The engine only sees numbers: it imports nothing from the layers above it (studies,
uncertainty, reporting, calibration, the CLI, the runner, the optimiser, pilots, response
measurement). Checked on the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import simulator.engine

ENGINE = Path(simulator.engine.__file__).resolve().parent
ABOVE = ("simulator.uncertainty", "simulator.study", "simulator.reporting", "simulator.calibration", "simulator.cli",
         "simulator.runner", "simulator.optimise", "simulator.pilot", "simulator.response", "simulator.executor",
         "simulator.results")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def test_the_engine_imports_no_layer_above_it():
    bad = []
    for path in sorted(ENGINE.rglob("*.py")):
        for line, name in _imports(path):
            if any(name == a or name.startswith(a + ".") for a in ABOVE):
                bad.append(f"{path.relative_to(ENGINE.parent.parent)}:{line}: imports {name}")
    assert not bad, "\n".join(bad)


def test_the_scan_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from simulator.uncertainty import realise\n    import simulator.cli\n")
    names = [n for _, n in _imports(f)]
    assert "simulator.uncertainty" in names and "simulator.cli" in names
