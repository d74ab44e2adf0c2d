"""Writing files so that a killed job never leaves a complete-looking output."""
from __future__ import annotations

import functools
import json
import os
import re
import socket
from contextlib import contextmanager
from pathlib import Path

# .tmp-uvac-<host>-<pid>-<name>; the older .tmp-<pid>-<name> is still recognised (as this host's)
_TEMP = re.compile(r"^\.tmp-(?:uvac-(?P<host>[A-Za-z0-9._]+)-)?(?P<pid>\d+)-(?P<name>.+)$")
_STALE: dict[str, dict[str, list[Path]]] = {}  # directory -> final name -> leftover temps, scanned once per process


@functools.cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def temp_path(path: str | Path) -> Path:
    """The temporary sibling this process writes for `path`: `.tmp-uvac-<host>-<pid>-<name>` (same suffix)."""
    path = Path(path)
    return path.with_name(f".tmp-uvac-{_host()}-{os.getpid()}-{path.name}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(directory: Path) -> dict[str, list[Path]]:
    """Temporary files in `directory` whose writer is gone (killed by SIGKILL, a power loss, a
    cancelled cluster job), by the name they were meant to become. A temp of a live process on
    this host is never one; a temp from another host counts (its writer cannot be checked), and
    only a later writer of the same name removes it. One directory scan per process."""
    key = os.path.abspath(directory)
    if key not in _STALE:
        found: dict[str, list[Path]] = {}
        host, me = _host(), os.getpid()
        with os.scandir(directory) as entries:
            for entry in entries:
                m = _TEMP.match(entry.name) if entry.name.startswith(".tmp-") else None
                if m is None or not entry.is_file(follow_symlinks=False):
                    continue
                pid = int(m["pid"])
                if m["host"] in (None, host) and (pid == me or _alive(pid)):
                    continue
                found.setdefault(m["name"], []).append(Path(entry.path))
        _STALE[key] = found
    return _STALE[key]


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary sibling path (same suffix) and rename it onto `path` only on success.

    A writer killed before the rename leaves only its temporary file, never a truncated `path`;
    the next write of the same path removes such leftovers, so they do not pile up beside a
    checkpoint rewritten every epoch.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _leftovers(path.parent).pop(path.name, []):
        stale.unlink(missing_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, value) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
