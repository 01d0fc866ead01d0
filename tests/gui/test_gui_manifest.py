"""The npe2 manifest: valid, discovered, contributions registered, and no torch import."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

WIDGETS = {"Cell curator", "Load", "Find cells", "Predict", "Curate", "Cluster", "Train",
           "Explain", "Export"}
SAMPLES = {"jurkat_small", "chula_small", "mixture", "cellness_sim"}


def test_manifest_contributions_registered():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover(include_npe1=False)
    manifest = pm.get_manifest("napari-cellcurator")
    contrib = manifest.contributions
    assert {w.display_name for w in contrib.widgets} == WIDGETS
    assert {s.key for s in contrib.sample_data} == SAMPLES
    assert contrib.readers and contrib.readers[0].accepts_directories
    assert {tuple(w.layer_types) for w in contrib.writers} == {("points",), ("labels",)}
    # every command resolves to an importable object
    for cmd in contrib.commands:
        module, attr = cmd.python_name.split(":")
        assert hasattr(__import__(module, fromlist=[attr]), attr), cmd.python_name


def test_discovery_and_widget_import_do_not_import_torch():
    code = (
        "import sys\n"
        "from npe2 import PluginManager\n"
        "pm = PluginManager(); pm.discover(include_npe1=False)\n"
        "m = pm.get_manifest('napari-cellcurator')\n"
        "assert m.contributions.widgets\n"
        "assert 'torch' not in sys.modules, 'manifest discovery imported torch'\n"
        "import napari_cellcurator._reader, napari_cellcurator._writer\n"
        "import napari_cellcurator._qt.dock\n"
        "assert 'torch' not in sys.modules, 'widget modules imported torch'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_npe2_validate():
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "napari-cellcurator"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_dock_opens_through_napari(make_napari_viewer):
    """napari builds the combined dock from the manifest (viewer injected by type)."""
    from napari_cellcurator._qt.cluster_widget import ClusterWidget
    from napari_cellcurator._qt.common import hub_for

    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-cellcurator", "Cell curator")
    assert [widget.tabs.tabText(i) for i in range(widget.tabs.count())] == [
        "Load", "Find cells", "Predict", "Curate", "Cluster", "Train", "Explain", "Export"]
    _, load = viewer.window.add_plugin_dock_widget("napari-cellcurator", "Load")
    assert type(load).__name__ == "LoadWidget"
    _, export = viewer.window.add_plugin_dock_widget("napari-cellcurator", "Export")
    assert type(export).__name__ == "ExportWidget"
    _, cluster = viewer.window.add_plugin_dock_widget("napari-cellcurator", "Cluster")
    assert isinstance(cluster, ClusterWidget)
    # widgets opened one by one get different proxies of the viewer but share its session
    _, curate = viewer.window.add_plugin_dock_widget("napari-cellcurator", "Curate")
    assert hub_for(load._viewer) is hub_for(curate._viewer) is hub_for(viewer)
    assert hub_for(widget.curate._viewer) is hub_for(viewer)
