"""Which data set a path names, whichever documented form of it the user typed.

A Suite2p recording can be given as a file in a plane folder, the plane folder, the
``suite2p/`` root or the recording folder above it; a Minian result as its folder or one of
its stores. Labels of one data set must live in one project, so the project is keyed on the
data set's root, not on the literal path.
"""

from __future__ import annotations

from pathlib import Path

from napari_cellcurator.core.io.suite2p import plane_folders


def dataset_root(path: str | Path) -> Path:
    """The absolute path that names the data set ``path`` belongs to.

    - Suite2p: a file in a plane folder (``stat.npy``, ``F.npy``…), the plane folder, the
      ``suite2p/`` folder or the recording folder holding it → the ``suite2p/`` folder, so
      the project (``rec/suite2p.cellcurator``) travels with the recording folder; plane
      folders outside a ``suite2p/`` folder → the folder holding the ``plane*`` folders;
    - a store of a Minian folder (``A.zarr``) → the Minian folder;
    - a Neurofinder data set's ``images/`` or ``regions/regions.json`` → the data set folder;
    - anything else → ``path`` itself (resolved).
    """
    path = Path(path).expanduser().resolve()
    if path.is_file() and path.suffix.lower() == ".npy" and (path.parent / "stat.npy").is_file():
        path = path.parent
    if (path / "stat.npy").is_file() and (path.name.lower().startswith("plane")
                                          or path.parent.name.lower() == "suite2p"):
        return path.parent
    if (path / "suite2p").is_dir() and plane_folders(path / "suite2p"):
        return path / "suite2p"
    from napari_cellcurator.core.io.minian import minian_folder

    if path.is_dir():
        folder = minian_folder(path)
        if folder is not None:
            return folder
    from napari_cellcurator.core.io.neurofinder import neurofinder_root

    return neurofinder_root(path) or path

