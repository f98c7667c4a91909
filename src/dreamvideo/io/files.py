"""Reading the text files users hand us (jobs, captions, configs, model indexes, datasets' lists).

They are untrusted data: every reader goes through these helpers, so a pipe or a device under a
file's name, a file that is not UTF-8, JSON nested thousands deep or holding integers of
thousands of digits each end in one `UserError` line instead of a hang or a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError

MAX_TEXT_BYTES = 256 * 2**20  # far above any jobs, captions or config file


def check_regular_file(path: Path, what: str) -> Path:
    """`path`, if it is a regular file (or a link to one); a folder, a FIFO (which would block
    its reader) or a device is refused."""
    if "\x00" in str(path):
        raise UserError(f"{what} path holds a NUL character: {str(path)!r}"[:200])
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if path.is_dir():
        raise UserError(f"{what} is a folder, not a file: {path}")
    if not path.is_file():
        raise UserError(f"{what} is not a regular file (a pipe, socket or device): {path}")
    return path


def read_text(path: Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A regular file's text, UTF-8 (a byte-order mark is dropped)."""
    check_regular_file(path, what)
    try:
        if path.stat().st_size > max_bytes:
            raise UserError(f"{what} {path} is over {max_bytes // 2**20} MiB")
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise UserError(f"cannot read {what} {path}: {error.strerror or error}") from None


def parse_json(text: str, where: str, unique_keys: bool = False) -> Any:
    """`json.loads`, every failure one line naming `where`; `unique_keys`: an object that names a
    key twice is refused too (json keeps the last silently)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict:
        if len({key for key, _ in pairs}) < len(pairs):
            raise UserError(f"{where}: a key is given twice")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=unique if unique_keys else None)
    except json.JSONDecodeError as error:
        raise UserError(f"{where}: not JSON ({error.msg}, line {error.lineno})") from None
    except (ValueError, RecursionError) as error:  # integers of thousands of digits, deep nesting
        raise UserError(f"{where}: not usable JSON ({str(error)[:80] or 'nested too deeply'})") from None


def read_json(path: Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """A regular file's JSON."""
    return parse_json(read_text(path, what, max_bytes), str(path))


def read_json_lines(path: Path, what: str) -> list[dict]:
    """A JSON Lines file's rows, each a JSON object (blank lines skipped)."""
    rows = []
    for number, line in enumerate(read_text(path, what).splitlines(), 1):
        if not line.strip():
            continue
        row = parse_json(line, f"{path.name} line {number}")
        if not isinstance(row, dict):
            raise UserError(f"{path.name} line {number}: a row must be a JSON object")
        rows.append(row)
    return rows
