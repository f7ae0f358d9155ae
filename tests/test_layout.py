"""The layout's rules, checked on the source (AST and import graph), not by convention.

- imports point down: shared base -> io -> datasets -> features -> models -> forecast ->
  describe / reconcile -> tracking -> jobs -> spark -> cli and the Python API;
- no import cycles between modules (grimp's graph of the installed package);
- only ``tracking/`` imports mlflow;
- only ``jobs/``, ``cli/`` (and the Spark jobs) read YAML, environment variables or cwd-relative
  paths, or write outputs; the few modules that implement those primitives are named below;
- a function-level import of a spendlab module carries a comment naming the heavy dependency it defers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

import spendlab

SRC = Path(spendlab.__file__).parent

#: Rank of each top-level part of the package; a module may import only from ranks <= its own.
LAYERS: dict[str, int] = {
    "errors": 0, "schema": 0, "config": 0, "config_files": 0, "calendar": 0, "settings": 0, "dependencies": 0, "timing": 0,
    "threads": 0, "sqltext": 0,
    "io": 1,
    "datasets": 2,
    "features": 3,
    "models": 4,
    "forecast": 5,
    "describe": 6, "reconcile": 6, "monitor": 6,
    "tracking": 7,
    "jobs": 8,
    "spark": 9,
    "api": 10, "cli": 10, "__init__": 10,
}
#: The only modules that may implement reading YAML / env / cwd paths or writing files: the
#: primitives every job calls (atomic writes and the output-safety checks, which must know the working
#: directory; the CSV writer, the rejects file, the YAML loader,
#: the lock and process tags, the tracking store's location and MLflow's own settings).
IO_PRIMITIVES = {
    "config.py", "config_files.py", "io/atomic.py", "io/csv_out.py", "io/rejects.py", "io/recovery.py", "io/safe_out.py",
    "tracking/runs.py", "tracking/registry.py", "tracking/trust.py", "tracking/persist.py",
}
#: Modules allowed to do I/O: the jobs, the CLI and the Python API (and the Spark jobs).
IO_ALLOWED_DIRS = ("jobs/", "spark/", "cli/")  # spark/ sits above jobs: the same jobs on a cluster
IO_ALLOWED_FILES = {"api.py"}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _rel(p: Path) -> str:
    return p.relative_to(SRC).as_posix()


#: Modules ranked apart from their folder: spark-submit's entry point is the CLI run under Spark.
MODULE_LAYERS: dict[str, str] = {"spendlab.spark.submit": "cli"}


def _part(module: str) -> str:
    if module in MODULE_LAYERS:
        return MODULE_LAYERS[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> grimp.ImportGraph:
    # annotations-only imports (under TYPE_CHECKING) never run, so they cannot form a runtime cycle
    return grimp.build_graph("spendlab", include_external_packages=True, exclude_type_checking_imports=True)


def test_imports_point_down() -> None:
    graph = _graph()
    bad = []
    for mod in sorted(m for m in graph.modules if m.startswith("spendlab.")):
        src_rank = LAYERS.get(_part(mod))
        assert src_rank is not None, f"{mod}: its top-level part has no layer in LAYERS"
        for dep in graph.find_modules_directly_imported_by(mod):
            if not dep.startswith("spendlab.") or _part(dep) == _part(mod):
                continue
            if LAYERS[_part(dep)] > src_rank:
                bad.append(f"{mod} -> {dep}")
    assert not bad, "imports that point up:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = _graph()
    mods = sorted(m for m in graph.modules if m.startswith("spendlab"))
    cycles = []
    for m in mods:
        for dep in graph.find_modules_directly_imported_by(m):
            if dep.startswith("spendlab") and graph.chain_exists(importer=dep, imported=m):
                cycles.append(" -> ".join(graph.find_shortest_chain(importer=dep, imported=m) or ()) + f" -> {dep}")
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_only_tracking_imports_mlflow() -> None:
    graph = _graph()
    importers = graph.find_modules_that_directly_import("mlflow")
    outside = sorted(m for m in importers if m.startswith("spendlab.") and _part(m) != "tracking")
    assert not outside, f"mlflow imported outside spendlab.tracking: {outside}"


def _imports_in_functions(tree: ast.AST) -> list[ast.AST]:
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "spendlab":
                    out.append(node)
                elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "spendlab" for a in node.names):
                    out.append(node)
    return out


def test_function_level_imports_name_what_they_defer() -> None:
    bad = []
    for p in _modules():
        lines = p.read_text().splitlines()
        for node in _imports_in_functions(ast.parse(p.read_text())):
            span = lines[node.lineno - 2:node.end_lineno]  # the line above counts too
            if not any("defer" in line and "#" in line for line in span):
                bad.append(f"{_rel(p)}:{node.lineno}")
    assert not bad, "function-level spendlab imports without a '# defer: <heavy dependency>' comment: " + \
        ", ".join(bad)


_YAML_ENV_CWD = {"load_yaml", "safe_load", "getenv", "getcwd", "cwd", "environ"}
_WRITES = {"atomic_path", "atomic_write_text", "atomic_dir", "write_text", "write_bytes", "to_csv", "to_parquet",
           "write_table", "copy_csv", "mkdir", "unlink", "rmtree", "replace", "rename"}


def _io_uses(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        if name in _YAML_ENV_CWD:
            found.add(name)
        if isinstance(node, ast.Call):
            f = node.func
            fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if fname in _WRITES and not (fname == "replace" and isinstance(f, ast.Attribute)
                                         and not isinstance(f.value, (ast.Name, ast.Attribute))):
                # str.replace on a literal/expression is not a file move; flag only calls on names
                found.add(fname)
            if fname == "open" and any(isinstance(a, ast.Constant) and isinstance(a.value, str) and
                                      ("w" in a.value or "a" in a.value) for a in node.args[1:2]):
                found.add("open-for-write")
            if fname == "Path" and node.args and isinstance(node.args[0], ast.Constant) and \
                    isinstance(node.args[0].value, str) and not node.args[0].value.startswith("/"):
                found.add(f"Path({node.args[0].value!r})")
    return found


@pytest.mark.parametrize("path", [p for p in _modules()
                                  if not _rel(p).startswith(IO_ALLOWED_DIRS)
                                  and _rel(p) not in IO_ALLOWED_FILES | IO_PRIMITIVES], ids=_rel)
def test_library_code_does_no_io_of_its_own(path: Path) -> None:
    uses = _io_uses(ast.parse(path.read_text()))
    # str.replace / dict-style calls share names with file operations: only a few names are unambiguous
    uses -= {"replace", "rename"} if not (uses & {"atomic_path", "open-for-write"}) else set()
    assert not uses, f"{_rel(path)} reads YAML/env/cwd paths or writes files ({sorted(uses)}); " \
                     "that belongs in jobs/ or cli/"


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _why_long(lines: list[str], lineno: int) -> bool:
    """A ``# long: <reason>`` comment on the definition's line or the line above it."""
    return any("# long:" in line for line in lines[max(0, lineno - 2):lineno])


@pytest.mark.parametrize("path", _modules(), ids=_rel)
def test_modules_and_functions_fit_on_a_screen_or_say_why(path: Path) -> None:
    text = path.read_text()
    lines = text.splitlines()
    problems = []
    if len(lines) > MAX_MODULE_LINES and not any("# long:" in line for line in lines[:30]):
        problems.append(f"{len(lines)} lines (over {MAX_MODULE_LINES}) without a '# long: <reason>' near the top")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            size = node.end_lineno - start + 1
            if size > MAX_FUNCTION_LINES and not _why_long(lines, start):
                problems.append(f"{node.name}: {size} lines (over {MAX_FUNCTION_LINES}) without '# long: <reason>'")
    assert not problems, f"{_rel(path)}: " + "; ".join(problems)


def _module_name(path: Path) -> str:
    parts = ["spendlab", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_imports(text: str, own: str, rel: str) -> list[str]:
    """``from spendlab.x import _name`` (or ``spendlab.x._name``) in module ``own``'s source ``text``, where
    ``spendlab.x`` is another module."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "spendlab":
            if node.module == own:
                continue
            found += [f"{rel}:{node.lineno}: {node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value  # spendlab.x._name reached through a module attribute
            dotted = []
            while isinstance(base, ast.Attribute):
                dotted.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id == "spendlab":
                module = ".".join(["spendlab", *reversed(dotted)])
                if module != own:
                    found.append(f"{rel}:{node.lineno}: {module}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_name() -> None:
    bad = [hit for p in _modules() for hit in _private_imports(p.read_text(), _module_name(p), _rel(p))]
    assert not bad, "private names used across modules (make a public seam or move the name):\n" + "\n".join(bad)


def test_the_private_import_check_catches_one() -> None:
    text = "from spendlab.forecast.backtest import _fit_predict\nimport spendlab.tracking.runs\n" \
           "x = spendlab.tracking.runs._run\nfrom spendlab.jobs.probe import _own\n"
    hits = _private_imports(text, "spendlab.jobs.probe", "jobs/probe.py")
    assert hits == ["jobs/probe.py:1: spendlab.forecast.backtest._fit_predict",
                    "jobs/probe.py:3: spendlab.tracking.runs._run"]


def _class_swaps(tree: ast.AST) -> list[int]:
    """Lines that assign a ``__class__`` (a module's class swapped at import time) or patch ``sys.stdout``."""
    out = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            if isinstance(t, ast.Attribute) and t.attr == "__class__":
                out.append(node.lineno)
            if isinstance(t, ast.Attribute) and t.attr in ("stdout", "stderr") and \
                    isinstance(t.value, ast.Name) and t.value.id == "sys":
                out.append(node.lineno)
    return out


def test_no_import_time_class_swapping_or_process_wide_stream_replacement() -> None:
    bad = [f"{_rel(p)}:{line}" for p in _modules() for line in _class_swaps(ast.parse(p.read_text()))]
    assert not bad, "module classes swapped or sys.stdout/stderr replaced: " + ", ".join(bad)
    assert _class_swaps(ast.parse("import sys\nsys.modules[__name__].__class__ = object\n")) == [2]
    assert _class_swaps(ast.parse("import sys\nsys.stdout = open('/dev/null')\n")) == [2]


def test_the_package_and_its_subpackages_are_plain_modules() -> None:
    import types

    import spendlab.describe
    import spendlab.features
    import spendlab.reconcile

    for module in (spendlab, spendlab.describe, spendlab.features, spendlab.reconcile):
        assert type(module) is types.ModuleType, module.__name__
