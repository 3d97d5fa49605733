"""README = truth: every ```python block in README.md runs, in a fresh
directory, in its own interpreter.  A block preceded by the line
``<!-- not run: REASON -->`` is skipped (say why in REASON)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- not run: [^>]*-->\s*)?```python\n(.*?)```", re.S)


def _blocks() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(2)) for m in BLOCK.finditer(text)
            if m.group(1) is None]


@pytest.mark.parametrize(("line", "code"), _blocks(), ids=lambda v: f"line{v}"
                         if isinstance(v, int) else "")
def test_readme_block_runs(line: int, code: str, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"README.md line {line}:\n{out.stderr[-3000:]}"


def test_there_are_blocks_to_run() -> None:
    assert len(_blocks()) >= 3
