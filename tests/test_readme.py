"""The README's examples run as written.

Every fenced ``bash`` or ``python`` block of README.md is executed here, in a temporary directory,
unless the line before it marks it: ``<!-- illustration: why -->`` (it needs something a test
cannot have, such as a registered model or your own data) or ``<!-- python-api-example ... -->``
(run by ``tests/test_api.py``). A block of ``make`` commands is checked against the Makefile's
targets instead of being run (it would run the test suite from inside itself).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[a-z]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$", re.M | re.S)
MARK = re.compile(r"<!--\s*(?P<kind>illustration|python-api-example)\b:?(?P<why>[^>]*)-->")

# The user's own export in the README's "Your own data" example, in configs/readers/plain-csv.yaml's
# layout: 3 users, 4 purchases and one refund. Gross spend 12.50 + 30.00 + 99.90 + 5.25 = 147.65.
DATA_CSV = """user_id,ts,amount
007,2024-01-05 10:00:00,12.50
007,2024-01-20 18:30:00,30.00
u2,2024-01-07 09:15:00,99.90
u3,2024-02-01 12:00:00,5.25
u3,2024-02-03 12:00:00,-5.25
"""


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    code: str
    mark: str | None
    why: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}:{self.lang}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced ``bash``/``python`` blocks of ``text``, each with the mark on the line before it."""
    blocks = []
    for m in FENCE.finditer(text):
        if m.group("lang") not in ("bash", "python"):
            continue
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        blocks.append(Block(line=text.count("\n", 0, m.start()) + 1, lang=m.group("lang"),
                            code=textwrap.dedent(m.group("body")),
                            mark=mark.group("kind") if mark else None,
                            why=mark.group("why").strip() if mark else ""))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUN = [b for b in BLOCKS if b.mark is None]


def test_the_readme_parser_finds_indented_blocks_and_their_marks() -> None:
    text = ("# t\n\n```bash\nmake run\n```\n\n1. item:\n   ```bash\n   spendlab x\n   ```\n"
            "<!-- illustration: needs a model -->\n```python\nprint(1)\n```\n```text\nnot code\n```\n")
    blocks = readme_blocks(text)
    assert [(b.line, b.lang, b.code, b.mark, b.why) for b in blocks] == [
        (3, "bash", "make run\n", None, ""),
        (8, "bash", "spendlab x\n", None, ""),
        (12, "python", "print(1)\n", "illustration", "needs a model"),
    ]


def test_every_example_is_run_or_says_why_not() -> None:
    assert len(RUN) >= 3, "most README examples should run: only mark what a test cannot run"
    for block in BLOCKS:
        if block.mark == "illustration":
            assert block.why, f"{block.id}: an illustration says why it is not run"
    assert [b.mark for b in BLOCKS].count("python-api-example") == 1


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))


def _commands(code: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in code.splitlines() if line.split("#", 1)[0].strip()]


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_readme_example_runs(block: Block, tmp_path: Path) -> None:
    commands = _commands(block.code)
    if block.lang == "bash" and all(c.startswith("make ") for c in commands):
        missing = {c.split()[1] for c in commands} - _make_targets()
        assert not missing, f"{block.id}: the Makefile has no target {sorted(missing)}"
        return
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    (tmp_path / "experiments").symlink_to(ROOT / "experiments")
    (tmp_path / "data.csv").write_text(DATA_CSV, encoding="utf-8")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlruns/mlflow.db"}
    argv = ["bash", "-euo", "pipefail", "-c", block.code] if block.lang == "bash" else [sys.executable, "-c", block.code]
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{block.id} failed:\n{result.stderr[-3000:]}"
    _check_outputs(block, result.stdout, tmp_path)


def _check_outputs(block: Block, stdout: str, cwd: Path) -> None:
    """What the README says each example gives, where it names a figure or a file."""
    if "validate builtin:cdnow --format cdnow --json" in block.code:
        summary = json.loads(stdout)
        assert (summary["users"], summary["files"][0]["accepted"]) == (23570, 69659)
    if "describe data.csv" in block.code:
        summary = json.loads((cwd / "outputs" / "mine" / "summary.json").read_text(encoding="utf-8"))
        assert summary["n_users"] == 3
        assert summary["total_spend"] == pytest.approx(147.65)


def test_extending_spendlab_shows_each_extension_in_one_place_in_under_20_lines() -> None:
    section = README.read_text(encoding="utf-8").split("\n## Extending spendlab\n", 1)[1].split("\n## ", 1)[0]
    blocks = readme_blocks(section)
    assert [(b.lang, b.mark) for b in blocks] == [("python", None)] * 3, "three snippets, each run above"
    for block, registry in zip(blocks, ("READERS[", "MODELS[", "FAMILIES["), strict=True):
        assert block.code.count(registry) == 1, f"the snippet registers through {registry}...] once"
        assert len(block.code.splitlines()) < 20, f"{registry}...] snippet is {len(block.code.splitlines())} lines"
