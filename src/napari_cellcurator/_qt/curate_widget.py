"""Curate widget: keyboard triage on the item layer, a sortable item table, review order.

Keys (bound on the item layer while this widget lives): ``c`` cell (or: accept the
prediction, for tasks without a cell class), ``x`` not cell (or: the runner-up class),
``1``–``9`` class k, ``l`` the class chosen in "label as" (any class, the 10th and beyond
included), ``n``/``p`` next/previous, ``u`` undo, ``Space`` explanation on/off.
Every label is written to the journal at once.
"""

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton

from napari_cellcurator._qt.common import (
    call_when_undocked,
    hub_for,
    notify_error,
    notify_info,
    real_viewer,
)
from napari_cellcurator._qt.curate_helpers import TABLE_ORDER_NOTE, class_choices, key_help
from napari_cellcurator._qt.item_table import ItemTable
from napari_cellcurator._qt.kinds import layer_kind
from napari_cellcurator._qt.layer_keys import LayerKeys

ORDERS = (("most uncertain, rare classes first", "balanced"), ("most uncertain", "uncertain"),
          ("highest entropy", "entropy"), ("random", "random"), ("by class", "class"))
COLUMNS = ("item_id", "label", "prediction", "probability", "label_source", "qc_flag")


class CurateWidget(Container):
    """Review items in order and label them with single keys."""

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = real_viewer(viewer)
        self._order_mode = ComboBox(label="review order", choices=ORDERS, value="balanced")
        self._advance = CheckBox(text="next item after labelling", value=True)
        self._current = Label(value="no item")
        self._help = Label(value=key_help(None))
        self._label_as = ComboBox(label="label as", choices=self._class_choices)
        self._label_button = PushButton(text="Label current item (l)")
        self._label_button.changed.connect(lambda: self.label_chosen())
        super().__init__(widgets=[self._order_mode, self._advance, self._current,
                                  self._label_as, self._label_button, self._help,
                                  Label(value=TABLE_ORDER_NOTE)])
        self.table = ItemTable(COLUMNS)
        self.table.item_clicked.connect(self.go_to)
        self.native.layout().addWidget(self.table, 1)  # the table takes the height
        self.trace_plot = None
        self.position = -1  # index into the review order
        self._keys = LayerKeys()
        self._detached = False
        self._order_mode.changed.connect(lambda _: (self.reorder(), self.fill_table()))
        self._hub = hub_for(viewer)
        self._hub.changed.connect(self._on_hub)
        self.native.destroyed.connect(self._keys.unbind)
        call_when_undocked(self, self.detach)
        if self._hub.session is not None:
            self._on_hub("session")

    # ---- session / layer ------------------------------------------------------------------
    @property
    def session(self):
        return self._hub.session

    def _on_hub(self, what: str) -> None:
        s = self.session
        if s is None or s.layer is None:
            return
        if what == "keys":  # another Curate widget closed: its keys may have been ours
            self.bind(s.layer)
            return
        if what in ("session", "model", "predictions"):  # classes come with a model
            self._label_as.reset_choices()
            self._help.value = key_help(s)
        if what == "session":
            self.bind(s.layer)
            self._add_trace_plot(s)
        if what == "explanation":  # only the trace plot changes
            row = (s.explanation or {}).get("row")
            if row is not None and row == s.current:
                self._show_current(row)
            return
        self.reorder()
        self.fill_table()

    def bind(self, layer) -> None:
        """Bind the triage keys on ``layer`` (and unbind them from a previous layer)."""
        self.unbind()
        keys = {"c": lambda _: self.label_key("c"), "x": lambda _: self.label_key("x"),
                "n": lambda _: self.step(1), "p": lambda _: self.step(-1),
                "u": lambda _: self.undo(), "Space": lambda _: self.toggle_overlay(),
                "l": lambda _: self.label_chosen()}
        for k in range(1, 10):
            keys[str(k)] = (lambda kk: (lambda _: self.label_class(kk - 1)))(k)
        self._keys.bind(layer, {key: self._when_aligned(f) for key, f in keys.items()})
        if layer_kind(layer) == "points":
            layer.events.data.connect(self._on_points_edited)

    def _aligned(self) -> bool:
        """Whether the item layer still has one point per item (said once when not)."""
        s = self.session
        if s is None or s.layer is None or layer_kind(s.layer) != "points" or \
                len(s.layer.data) == len(s.items):
            return True
        notify_error(f"the layer {s.layer.name!r} has {len(s.layer.data)} points for "
                     f"{len(s.items)} items, so labels cannot be matched to cells: the keys "
                     "are off. To add or remove cells, edit the points and press Load → "
                     "Use these layers again (labels of unchanged points are kept).")
        return False

    def _when_aligned(self, func):
        return lambda event: func(event) if self._aligned() else None

    def _on_points_edited(self, event) -> None:
        if getattr(event, "action", None) in ("added", "removed"):
            self._aligned()

    def unbind(self) -> None:
        """Remove this widget's key bindings from the layer (keys another Curate widget
        bound since are left alone)."""
        layer = self._keys.layer
        self._keys.unbind()
        if layer is not None:
            if layer_kind(layer) == "points":
                layer.events.data.disconnect(self._on_points_edited)

    def detach(self) -> None:
        """Out of its dock (napari's close button) or closed: unbind and stop following
        the data (a later data set must not bind a closed widget's keys); any other Curate
        widget of the viewer binds its keys again."""
        if self._detached:
            return
        self._detached = True
        self.unbind()
        self._hub.changed.disconnect(self._on_hub)
        self._hub.changed.emit("keys")

    def close(self) -> None:
        self.detach()
        super().close()

    # ---- order and navigation ---------------------------------------------------------------
    def reorder(self) -> None:
        s = self.session
        if s is None:
            return
        if s.predictions is None:
            s.order = np.arange(len(s.items))
        else:
            from napari_cellcurator.core.triage import human_labels, review_order

            labelled, counts = human_labels(s.merged_table())
            # the predictions carry the items' qc_flag: marked cells come after the others
            s.order = review_order(s.predictions, self._order_mode.value, labelled=labelled,
                                   label_counts=counts)
        self.position = -1

    def current_row(self) -> int | None:
        s = self.session
        if s is None or s.order is None or not 0 <= self.position < len(s.order):
            return None
        return int(s.order[self.position])

    def step(self, delta: int) -> None:
        s = self.session
        if s is None or s.order is None or len(s.order) == 0:
            return
        self.position = int(np.clip(self.position + delta, 0, len(s.order) - 1))
        self.go_to(self.current_row())

    def go_to(self, row: int) -> None:
        """Centre and zoom on item ``row``, select it and show its details."""
        if not self._aligned():
            return
        s = self.session
        where = s.order is not None and np.flatnonzero(s.order == row)
        if where is not False and len(where):
            self.position = int(where[0])
        s.current = row
        from napari_cellcurator._qt.task_layers import centre_on_item

        centre_on_item(self._viewer, s, row)  # and its frames, for a mixture snippet
        if layer_kind(s.layer) == "points":
            s.layer.selected_data = {row}
        elif layer_kind(s.layer) == "labels":
            s.layer.selected_label = int(s.label_ids()[row])
        self.table.select_item(row)  # and scrolled to
        self._show_current(row)

    def _show_current(self, row: int) -> None:
        s = self.session
        f = s.layer.features.iloc[row]
        prob = f["probability"]
        prob_text = "" if np.isnan(prob) else f" p={prob:.2f}"
        self._current.value = (f"{f['item_id']}: label {f['label'] or '—'} "
                               f"({f['label_source'] or 'none'}), predicted "
                               f"{f['prediction'] or '—'}{prob_text}")
        if self.trace_plot is not None and "trace" in s.items.arrays:
            exp = s.explanation or {}
            importance = exp.get("trace_importance") if exp.get("row") == row else None
            self.trace_plot.show_trace(s.items.load(np.array([row]), "trace")[0], f["item_id"],
                                       importance)

    # ---- labelling --------------------------------------------------------------------------
    def label_class(self, k: int) -> None:
        s = self.session
        if k >= len(s.classes):
            notify_error(f"there is no class {k + 1} (classes: {', '.join(s.classes)})")
            return
        self._apply_label(s.classes[k])

    def _class_choices(self, _widget=None) -> list[tuple[str, str]]:
        """The model's classes (else the session's) with their digit keys."""
        return class_choices(self._hub.session if hasattr(self, "_hub") else None)

    def label_chosen(self) -> None:
        """Label the current item with the class chosen in "label as"."""
        if self.session is not None and self._label_as.value is not None:
            self._apply_label(self._label_as.value)

    def label_key(self, key: str) -> None:
        """``c``/``x``: cell/not cell, or accept the prediction / take the runner-up class
        (mixture: accept the predicted proportion); see :func:`core.triage.key_label`."""
        from napari_cellcurator.core.triage import key_label

        s = self.session
        row = self._row_or_first()
        if row is None:
            return
        scores = None if s.scores is None else np.asarray(s.scores[row]).reshape(-1)
        try:
            label = key_label(key, s.classes, scores, s.proportions)
        except ValueError as exc:
            notify_info(str(exc))
            return
        self._apply_label(label)

    def _row_or_first(self) -> int | None:
        if self.current_row() is None:
            self.step(1)
        return self.current_row()

    def _apply_label(self, label: str) -> None:
        row = self._row_or_first()
        if row is None:
            return
        try:
            self.session.set_label(row, label)
        except Exception as exc:  # a journal failure must be seen, not lost
            notify_error(exc)
            return
        self._update_row(row)
        if self._advance.value:
            self.step(1)
        else:
            self._show_current(row)

    def undo(self) -> None:
        events = self.session.undo()
        if not events:
            notify_info("nothing to undo")
            return
        self.fill_table()
        ids = list(self.session.items.table["item_id"])
        row = ids.index(events[0].item_id) if events[0].item_id in ids else None
        if row is not None:
            self.go_to(row)

    def toggle_overlay(self) -> None:
        layers = [ly for ly in self._viewer.layers
                  if ly.metadata.get("cellcurator_role") == "explanation"]
        if not layers:
            notify_info("no explanation yet (Explain widget)")
        for ly in layers:
            ly.visible = not ly.visible

    # ---- table ------------------------------------------------------------------------------
    def fill_table(self) -> None:
        s = self.session
        if s is not None and s.layer is not None:
            self.table.fill(s.layer.features, s.order)  # rows in the review order

    def _update_row(self, row: int) -> None:
        self.table.update_row(row, self.session.layer.features.iloc[row])

    def _add_trace_plot(self, s) -> None:
        """A trace plot for data with traces; hidden (and cleared) for data without."""
        traces = "trace" in s.items.arrays
        if traces and self.trace_plot is None:
            from napari_cellcurator._qt.plots import TracePlot

            self.trace_plot = TracePlot()
            self.native.layout().addWidget(self.trace_plot)
        if self.trace_plot is not None:
            self.trace_plot.setVisible(traces)
            self.trace_plot.show_trace(None)  # no trace of the previous data

