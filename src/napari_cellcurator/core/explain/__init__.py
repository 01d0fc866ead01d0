"""Explanations of single predictions: layer activations, occlusion sensitivity, Grad-CAM.

Everything takes a loaded model and ONE item's model-ready inputs (tensors from
``task.make_batch`` or numpy arrays) and returns float32 numpy maps with the item's spatial
shape; :mod:`.align` places them over the item's pixels in napari; :mod:`.api` is what the CLI
and the Explain widget call.
"""

from napari_cellcurator.core.explain.activations import layer_activations
from napari_cellcurator.core.explain.align import clip_to_frame, map_scale_translate, world_bbox
from napari_cellcurator.core.explain.api import (
    METHODS,
    explain,
    explain_batch,
    explain_item,
    explain_iter,
)
from napari_cellcurator.core.explain.common import list_conv_layers, make_score_fn
from napari_cellcurator.core.explain.gradcam import gradcam
from napari_cellcurator.core.explain.occlusion import (
    default_patch,
    occlusion_iter,
    occlusion_map,
    trace_occlusion,
    trace_occlusion_iter,
)

__all__ = [
    "METHODS", "clip_to_frame", "default_patch", "explain", "explain_batch", "explain_item",
    "explain_iter", "gradcam", "layer_activations", "list_conv_layers", "make_score_fn",
    "map_scale_translate", "occlusion_iter", "occlusion_map", "trace_occlusion",
    "trace_occlusion_iter", "world_bbox",
]
