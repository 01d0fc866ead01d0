"""Readers: files → one canonical table of items (:class:`ItemSet`)."""

from napari_cellcurator.core.io.items import ItemSet, concat_itemsets

__all__ = ["ItemSet", "concat_itemsets"]
