"""The load generators and servers the harness runs, and where they come from."""

from __future__ import annotations

import os
import shutil
import subprocess

# tool -> the Debian/Ubuntu package that ships it
DEBIAN_PACKAGES = {"wrk": "wrk", "hey": "hey", "nginx": "nginx"}
REQUIRED = ("wrk", "hey")


class MissingTool(RuntimeError):
    pass


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def _apt_install(packages: list[str]) -> None:
    print(f"bench: installing {' '.join(packages)} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *packages], check=False)


def find_tools() -> dict[str, str | None]:
    """Paths of wrk, hey and nginx; as root, apt-get installs the required ones if missing.

    Raises ``MissingTool`` naming the packages when wrk or hey cannot be found;
    nginx is optional (its baseline is skipped), so it maps to ``None`` when absent.
    """
    missing = [t for t in REQUIRED if not _which(t)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install([DEBIAN_PACKAGES[t] for t in missing])
        missing = [t for t in REQUIRED if not _which(t)]
    if missing:
        packages = " ".join(DEBIAN_PACKAGES[t] for t in missing)
        raise MissingTool(f"{', '.join(missing)} not found; install with: sudo apt-get install -y {packages}")
    return {tool: _which(tool) for tool in DEBIAN_PACKAGES}
