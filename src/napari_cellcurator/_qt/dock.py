"""One dock with the whole curation loop: Load, Find cells, Predict, Curate, Cluster, Train,
Explain, Export."""

import napari.viewer
from magicgui.widgets import Container
from qtpy.QtWidgets import QTabWidget

from napari_cellcurator._qt.cluster_widget import ClusterWidget
from napari_cellcurator._qt.common import call_when_undocked, real_viewer
from napari_cellcurator._qt.curate_widget import CurateWidget
from napari_cellcurator._qt.explain_widget import ExplainWidget
from napari_cellcurator._qt.export_widget import ExportWidget
from napari_cellcurator._qt.load_widget import LoadWidget
from napari_cellcurator._qt.predict_widget import PredictWidget
from napari_cellcurator._qt.propose_widget import ProposeWidget
from napari_cellcurator._qt.train_widget import TrainWidget


class CuratorDock(Container):
    """Tabs of the widgets, sharing the viewer's session."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        viewer = real_viewer(viewer)
        self.load = LoadWidget(viewer)
        self.propose = ProposeWidget(viewer)
        self.predict = PredictWidget(viewer)
        self.curate = CurateWidget(viewer)
        self.cluster = ClusterWidget(viewer)
        self.train = TrainWidget(viewer)
        self.explain = ExplainWidget(viewer)
        self.export = ExportWidget(viewer)
        self.tabs = QTabWidget()
        for name, widget in (("Load", self.load), ("Find cells", self.propose),
                             ("Predict", self.predict),
                             ("Curate", self.curate), ("Cluster", self.cluster),
                             ("Train", self.train), ("Explain", self.explain),
                             ("Export", self.export)):
            self.tabs.addTab(widget.native, name)
        self.native.layout().addWidget(self.tabs)
        call_when_undocked(self, self.curate.detach)

    def close(self) -> None:
        self.curate.close()
        self.export.close()
        super().close()



class ClusterDockWidget(ClusterWidget):
    """The Cluster widget on its own (napari injects the viewer by this annotation)."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(real_viewer(viewer))
