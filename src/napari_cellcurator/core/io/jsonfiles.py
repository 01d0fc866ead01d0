"""JSON annotation and ROI files read with one clear error naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from napari_cellcurator.core.errors import InputError


def read_json(path: str | Path, what: str = "JSON") -> Any:
    """The parsed content of the JSON file ``path``.

    Raises
    ------
    InputError
        Naming the file when it cannot be read or is not valid UTF-8 JSON (``what`` names
        the kind of file expected: "GeoJSON", "LabelMe JSON"...).
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"is not readable {what} ({exc})") from None
