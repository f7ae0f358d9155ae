"""A library fit silenced on one thread must not swallow what other threads print, nor touch sys.stdout."""

from __future__ import annotations

import sys
import threading
import types

from spendlab.models.base import quiet_library_fit


def _library() -> types.ModuleType:
    """A stand-in for ``lifetimes.fitters``: a module whose code prints through its global ``print``."""
    module = types.ModuleType("noisy_library")
    exec("def fit():\n    print('optimiser report')\n", module.__dict__)
    return module


def test_quiet_fit_drops_only_its_own_threads_prints(capsys) -> None:
    library = _library()
    inside, go_on = threading.Event(), threading.Event()
    streams = []

    def noisy() -> None:
        with quiet_library_fit(library):
            streams.append(sys.stdout)
            library.fit()  # what lifetimes prints on a failed fit
            inside.set()
            go_on.wait(5)

    before = sys.stdout
    t = threading.Thread(target=noisy)
    t.start()
    assert inside.wait(5)
    print("progress line from another thread")  # printed while the fit is still muted
    go_on.set()
    t.join(5)
    sys.stdout.flush()
    out = capsys.readouterr().out
    assert "progress line from another thread" in out
    assert "optimiser report" not in out
    assert streams == [before] and sys.stdout is before  # the process's stdout was never replaced


def test_the_library_prints_again_after_the_fit(capsys) -> None:
    library = _library()
    with quiet_library_fit(library):
        library.fit()
    library.fit()
    assert capsys.readouterr().out == "optimiser report\n"
    assert "print" not in library.__dict__
