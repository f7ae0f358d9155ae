"""Run the spendlab command line in-process and enumerate its commands from the typer app.

Commands are read from the app itself, so a new command is covered by every matrix test that
uses :func:`leaf_commands` without editing the test.
"""

from __future__ import annotations

import contextlib
import io
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer.main

from spendlab.cli import app, main


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str


def run_cli(argv: list[str]) -> CliRun:
    """``spendlab *argv`` through the console entry point; an escaping exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliRun(code, out.getvalue(), err.getvalue())


@dataclass(frozen=True)
class Param:
    name: str
    opts: tuple[str, ...]  # empty for an argument
    required: bool
    is_flag: bool
    hint: object  # the Python type annotation (Optional unwrapped)

    @property
    def is_option(self) -> bool:
        return bool(self.opts)


def _unwrap(hint: object) -> object:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)) \
        and len(args) == 1 else hint


def leaf_commands() -> dict[str, list[Param]]:
    """``{"experiment run": [Param, ...], ...}`` for every command of the app (groups walked)."""
    found: dict[str, list[Param]] = {}

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        hints = typing.get_type_hints(cmd.callback)  # type: ignore[attr-defined]
        params = []
        for p in cmd.params:  # type: ignore[attr-defined]
            is_option = p.param_type_name == "option"
            params.append(Param(p.name, tuple(p.opts) if is_option else (), bool(p.required),
                                bool(getattr(p, "is_flag", False)) if is_option else False,
                                _unwrap(hints.get(p.name))))
        found[" ".join(path)] = params

    walk(typer.main.get_command(app), [])
    return found


def groups() -> list[str]:
    """Every command group's path (``""`` is the root)."""
    found: list[str] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            found.append(" ".join(path))
            for name, sub in subs.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def tree_state(root: Path) -> dict[str, object]:
    """Every path under ``root`` with its type and content (files), target (links) or nothing."""
    state: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            state[rel] = ("link", str(p.readlink()))
        elif p.is_file():
            state[rel] = ("file", p.read_bytes())
        elif p.is_dir():
            state[rel] = ("dir",)
        else:
            state[rel] = ("special", p.stat().st_mode)
    return state


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    import os

    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
