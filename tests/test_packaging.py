"""The built wheel carries the manifest, sample data and pretrained weights, and napari (npe2)
discovers the plugin from a wheel install, not only from the editable checkout."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", str(REPO), "-w", str(out)], check=True, cwd=build,
                   capture_output=True)
    (whl,) = out.glob("napari_cellcurator-*.whl")
    return whl


def test_wheel_contains_manifest_entry_point_and_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_cellcurator/napari.yaml" in names
    assert any(n.startswith("napari_cellcurator/sample_data/cellness_sim/") for n in names)
    assert any(n.startswith("napari_cellcurator/core/pretrained/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert "[napari.manifest]" in text and "napari_cellcurator:napari.yaml" in text


@pytest.mark.timeout(300)
def test_npe2_discovers_plugin_from_wheel_install(wheel, tmp_path):
    """Install the wheel alone into a target folder and discover it from there."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    probe = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        # hide the editable checkout so only the wheel can provide the plugin
        "sys.path = [p for p in sys.path if 'src' not in p.split('/')[-1:]]\n"
        "import importlib.metadata as md, npe2, napari_cellcurator\n"
        "pm = npe2.PluginManager()\n"
        "pm.discover()\n"
        "m = pm.get_manifest('napari-cellcurator')\n"
        "c = m.contributions\n"
        "print(json.dumps({'file': napari_cellcurator.__file__,"
        " 'widgets': [w.display_name for w in c.widgets or []],"
        " 'readers': len(c.readers or []), 'writers': len(c.writers or []),"
        " 'samples': [s.key for s in c.sample_data or []],"
        " 'torch': 'torch' in sys.modules}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["file"].startswith(str(target)), info["file"]
    assert {"Load", "Predict", "Curate", "Train", "Explain"} <= set(info["widgets"])
    assert info["readers"] >= 1 and info["writers"] >= 1
    assert "cellness_sim" in info["samples"]
    assert info["torch"] is False
