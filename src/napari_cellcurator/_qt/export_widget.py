"""Export widget: the curated result to CSV/Parquet, or back into Suite2p / CaImAn files.

Thin over :mod:`napari_cellcurator.core.curation` (the same rule as ``cellcurator export``):
one decision per item — the person's label, else the label read from the files, else the
model's prediction. The model replaces the pipeline's own classifier (Suite2p ``iscell``,
CaImAn ``idx_components``) only when "the model decides uncurated items" is ticked.
"""

from __future__ import annotations

from pathlib import Path

import napari.viewer
from magicgui.widgets import CheckBox, Container, FileEdit, Label, PushButton

from napari_cellcurator._qt.common import (
    hub_for,
    notify_error,
    notify_info,
    real_viewer,
    require_session,
)
from napari_cellcurator.core.errors import CellCuratorError


class ExportWidget(Container):
    """Save what was curated; write cell / not-cell back where the pipeline that made the
    candidates (Suite2p, CaImAn, NWB, Minian, ROI masks) reads it."""

    def __init__(self, viewer: napari.viewer.Viewer):
        viewer = self._viewer = real_viewer(viewer)
        self._path = FileEdit(label="save to", mode="w", filter="*.csv *.parquet",
                              tooltip="a .csv or .parquet file (written atomically)")
        self._export = PushButton(text="Export labels + predictions")
        self._write_back = PushButton(
            text="Write back to the source (Suite2p, CaImAn, NWB, Minian, masks)",
            tooltip="update iscell.npy / idx_components (the original is backed up beside "
                    "it), write rec_curated.nwb, add iscell_curated.zarr to a Minian folder, "
                    "or write <movie>_cells.tif / .zip beside a movie read with its ROIs")
        self._model_decides = CheckBox(
            text="the model decides uncurated items", value=False,
            tooltip="uncurated items take the model's prediction instead of the pipeline's "
                    "own label (off: only what a person decided changes)")
        self._status = Label(value="")
        super().__init__(widgets=[self._path, self._model_decides, self._export,
                                  self._write_back, self._status])
        self._export.changed.connect(self.export)
        self._write_back.changed.connect(self.write_back)
        self._hub = hub_for(viewer)
        self._suggested: str | None = None  # the path this widget filled in
        self._hub.changed.connect(self._on_hub)
        self._on_hub()

    def _on_hub(self, *_) -> None:
        s = self._hub.session
        self._write_back.enabled = s is not None and s.task_name == "cellness"
        # a path the user chose stays; the one suggested for the previous data set follows
        # the new one (else B's export would overwrite A's)
        if s is not None and str(self._path.value) in ("", ".", self._suggested):
            name = f"{s.data_path.stem}_curated.csv"
            # data made in napari (no file): beside their project, not wherever napari started
            folder = (s.data_path.parent if s.data_path.is_absolute() or s.project is None
                      else s.project.folder)
            self._path.value = folder / name
            self._suggested = str(self._path.value)

    def curated(self):
        """The curated table of the loaded session (see :func:`core.curation.curated_table`)."""
        from napari_cellcurator.core.curation import curated_table, model_decides
        from napari_cellcurator.core.tasks import get_task

        s = require_session(self._viewer)
        journal = s.journal.current_labels() if s.journal is not None else None
        task = get_task(s.task_name)
        return curated_table(s.items.table, s.predictions, journal,
                             model_over_file_labels=model_decides(
                                 task, bool(self._model_decides.value)),
                             proportions=task.kind == "proportion")

    def export(self, *_) -> Path | None:
        from napari_cellcurator.core.curation import export_table

        try:
            table = self.curated()
            path = export_table(table, Path(self._path.value))
        except (CellCuratorError, RuntimeError, OSError, ValueError) as exc:
            notify_error(f"export failed: {exc}")
            return None
        self._say(f"wrote {path.name}: {len(table)} items", table)
        return path

    def write_back(self, *_) -> Path | None:
        from napari_cellcurator.core.curation import write_back_curated, write_back_summary
        from napari_cellcurator.core.tasks import get_task

        try:
            s = require_session(self._viewer)
            table = self.curated()
            path = write_back_curated(get_task(s.task_name), s.items, table)
        except (CellCuratorError, RuntimeError, OSError, ValueError) as exc:
            notify_error(f"write-back failed: {exc}")
            return None
        self._say(write_back_summary(s.items, path), table)
        return path

    def _say(self, text: str, table) -> None:
        from napari_cellcurator.core.curation import model_changes

        counts = table["curated_from"].value_counts().to_dict()
        changed = (f"; the model changed {model_changes(table)} of the pipeline's labels"
                   if self._model_decides.value else "")
        self._status.value = f"{text}; from labels {counts.get('label', 0)}, " \
                             f"from the model {counts.get('model', 0)}{changed}"
        notify_info(self._status.value)

    def close(self) -> None:
        self._hub.changed.disconnect(self._on_hub)
        super().close()
