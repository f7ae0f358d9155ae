"""SIGTERM that lands where Python cannot raise (a garbage-collection callback, a ``__del__``).

Python reports such an exception as "Exception ignored in ..." with a traceback and carries on, so a
termination would be lost and a traceback printed. The CLI's unraisable hook re-raises it, by SIGALRM,
in ordinary code a moment later: the job still ends with exit 143 and one line.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_a_termination_swallowed_in_a_del_is_raised_again_in_ordinary_code() -> None:
    proc = _run("""
        import gc, time
        from spendlab import cli

        previous = cli._on_sigterm()

        class Finaliser:
            def __del__(self):
                cli._raise_terminated(15, None)   # the signal's handler, run inside a finaliser

        try:
            Finaliser()                            # collected at once: Terminated is unraisable there
            gc.collect()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                sum(range(1000))
            print("lost")
        except cli.Terminated:
            print("terminated")
        finally:
            cli._restore_sigterm(previous)
    """)
    assert proc.stdout.strip() == "terminated", proc.stdout + proc.stderr
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr


def test_other_unraisable_exceptions_are_still_reported_and_the_hooks_are_restored() -> None:
    proc = _run("""
        import signal, sys
        from spendlab import cli

        hook, alarm = sys.unraisablehook, signal.getsignal(signal.SIGALRM)
        previous = cli._on_sigterm()

        class Broken:
            def __del__(self):
                raise ValueError("boom in a finaliser")

        Broken()
        cli._restore_sigterm(previous)
        print(sys.unraisablehook is hook, signal.getsignal(signal.SIGALRM) is alarm,
              signal.getsignal(signal.SIGTERM) is not cli._raise_terminated)
    """)
    assert proc.stdout.split() == ["True", "True", "True"], proc.stdout + proc.stderr
    assert "boom in a finaliser" in proc.stderr
