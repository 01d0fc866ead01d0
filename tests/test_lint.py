"""The code base stays ruff-clean (the repository's own configuration in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it comes with the dev extra)")
    out = subprocess.run([ruff, "check", "src", "tests", "bench", "scripts"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_no_private_napari_api():
    """The plugin uses napari's public API only (private attributes change without notice):
    no ``layer._type_string``, ``viewer.window._qt_window``, ``qt_viewer`` and the like."""
    import re

    private = re.compile(r"\.(_type_string|_qt_window|_qt_viewer|qt_viewer|_slice_input|"
                         r"_data_view|_view_data)\b")
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
             for path in sorted((REPO / "src").rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if private.search(line.split("#")[0])]
    assert not found, "\n".join(found)
