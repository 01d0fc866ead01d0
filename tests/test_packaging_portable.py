"""The package holds its manifest and sample data as real files: Git for Windows checks
symlinks out as small text files, and napari would read '../../napari.yaml' as the manifest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_no_symlinks_inside_the_package():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-s", "src"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    links = [line.split("\t")[1] for line in listed if line.startswith("120000")]
    assert not links, f"symlinks in the package: {links}"
    assert (REPO / "src" / "napari_cellcurator" / "napari.yaml").is_file()
