"""The Python scripts the benchmarks run in child processes (module-level ``NAME = \"\"\"...\"\"\"``) import what exists.

A child's ImportError only shows as a FAILED cell of a benchmark's table (``bench_scoring``'s bare predict
did so after ``usable_cores`` moved to ``spendlab.settings``); every import of every such snippet is run here.
"""

from __future__ import annotations

import ast

import pytest

from tests.benchmark_module import ROOT

FILES = sorted((ROOT / "benchmarks").glob("*.py"))


def _snippets() -> list[tuple[str, str, str]]:
    out = []
    for path in FILES:
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper()):
                text = node.value.value
                try:
                    tree = ast.parse(text)
                except SyntaxError:
                    continue  # a template or plain text, not a script
                if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body):
                    out.append((path.name, node.targets[0].id, text))
    return out


SNIPPETS = _snippets()


def test_the_benchmarks_have_child_scripts_to_check():
    assert ("bench_scoring.py", "BARE_PREDICT") in {(f, n) for f, n, _ in SNIPPETS}


@pytest.mark.parametrize(("file", "name", "text"), SNIPPETS, ids=[f"{f}:{n}" for f, n, _ in SNIPPETS])
def test_every_import_of_a_child_script_resolves(file, name, text):
    imports = [n for n in ast.parse(text).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), f"{file}:{name}", "exec"), {})
