"""The core imports no Qt, napari or magicgui; importing the plugin does not import torch."""

import json
import subprocess
import sys

CORE_MODULES = [
    "napari_cellcurator.core",
    "napari_cellcurator.core.pipeline",
    "napari_cellcurator.core.training",
    "napari_cellcurator.core.batch",
    "napari_cellcurator.core.tasks.celltype",
    "napari_cellcurator.core.models.registry",
    "napari_cellcurator.core.store.modelio",
]
FORBIDDEN = ["qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "vispy"]


def _imported_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_core_imports_without_qt_or_napari():
    imports = "\n".join(f"import {m}" for m in CORE_MODULES)
    # build a model from every family too: model modules are loaded lazily by the registry
    code = imports + ("\nfrom napari_cellcurator.core.models import available_models"
                      "\navailable_models()")
    modules = _imported_after(code)
    leaked = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert not leaked, f"core imported {leaked}"


def test_all_core_modules_import_cleanly():
    import pkgutil

    import napari_cellcurator.core as core

    names = [m.name for m in pkgutil.walk_packages(core.__path__, "napari_cellcurator.core.")]
    code = "import importlib\n" + "\n".join(f"importlib.import_module({n!r})" for n in names)
    modules = _imported_after(code)
    leaked = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert not leaked, f"core imported {leaked}"


def test_package_import_is_light():
    modules = _imported_after("import napari_cellcurator")
    assert "torch" not in modules
    assert "napari" not in modules
