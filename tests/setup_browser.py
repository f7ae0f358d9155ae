"""Install Debian's Chromium for the browser tests when it is missing (run by ``make test``).

The browser tests need a real headless Chromium. On a fresh machine the test set-up installs it
from Debian's packages (this workplace runs as root); where that is impossible the browser tests
are skipped with the reason, never silently passed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def run_headless(args: list[str], profile: os.PathLike[str] | str, timeout: int = 120) -> subprocess.CompletedProcess[bytes]:
    """Run headless Chromium with the flags this closed network needs (tests call this).

    Raises ``FileNotFoundError`` when Chromium is missing; test helpers turn that into a skip.
    """
    exe = chromium_path()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (run `python -m tests.setup_browser` as root)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--no-proxy-server", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)



def headless_or_skip(args: list[str], tmp: os.PathLike[str] | str, timeout: int = 120) -> subprocess.CompletedProcess[bytes]:
    """:func:`run_headless` with a fresh profile under ``tmp``; the calling test is skipped (with the
    reason) where Chromium is missing. Shared by the browser tests."""
    from pathlib import Path

    import pytest

    try:
        return run_headless(args, Path(tmp) / "profile", timeout)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))

def main() -> int:
    if chromium_path():
        return 0
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("setup_browser: chromium missing and apt-get/root unavailable; browser tests will skip", file=sys.stderr)
        return 0
    print("setup_browser: installing Debian chromium for the browser tests ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            print(f"setup_browser: {' '.join(cmd)} failed: {result.stderr[-500:]}", file=sys.stderr)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
