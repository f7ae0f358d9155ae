"""A library fit silenced on one thread must not swallow what other threads print."""

from __future__ import annotations

import sys
import threading

from spendlab.models.base import quiet_library_fit


def test_quiet_fit_drops_only_its_own_threads_prints(capsys) -> None:
    inside, go_on = threading.Event(), threading.Event()

    def noisy() -> None:
        with quiet_library_fit():
            print("optimiser report")  # what lifetimes prints on a failed fit
            inside.set()
            go_on.wait(5)

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
