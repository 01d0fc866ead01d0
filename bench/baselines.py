"""CNN vs kNN / SVM-RBF baselines and the data-volume curve (issue 4), on the shared real sets.

Runs ``cellcurator compare`` (:func:`napari_cellcurator.core.baselines.compare`) on Jurkat
label-free (channels 0,2) and Chula RBC-12: one hash split (whole smears on one side), the
CNN trained on 10 / 25 / 50 / 100 % of the training items (more epochs for smaller
fractions, so each point has about the same optimisation steps), kNN and SVM-RBF on
flattened normalised pixels (PCA to 100 components) and on the penultimate-layer features of
the CNN trained on the same fraction. Every method is scored on the same validation items;
the CNN keeps its last epoch (no choice of epoch on the set it is scored on).

The CNN here trains a third of the default epochs at the full set (the comparison is a few
training runs), so its figures sit below ``bench/celltype_report.py``'s.

Writes ``bench/results/baselines.json`` and one plot per set, ``baselines_<name>.png``.
``--quick`` runs two fractions and one epoch on 70 Jurkat crops (a smoke test, not a result).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from common import JURKAT, SHARED_DATA, parse_args, show, write_result

CHULA = SHARED_DATA / "celltype" / "chula_rbc12"
METHODS = ("cnn", "knn_pixels", "svm_pixels", "knn_cnn", "svm_cnn")


def run(name: str, data: Path, channels: list[int] | None, quick: bool, out: Path) -> dict:
    """``compare`` on ``data``; its plot is copied to ``out/baselines_<name>.png``."""
    from napari_cellcurator.core.baselines import compare

    kwargs = {"fractions": (0.5, 1.0), "epochs": 1} if quick else {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cc_baselines_") as tmp:
        if quick:
            from gui import jurkat_subset

            data = jurkat_subset(Path(tmp) / "jurkat", 70)
        res = compare("celltype", [str(data)], channels, tmp, **kwargs)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(tmp) / "compare.png", out / f"baselines_{name}.png")
    res.pop("files", None)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["data"] = "70 Jurkat crops (quick)" if quick else str(data.relative_to(
        SHARED_DATA.parent))
    return res


def report(name: str, res: dict) -> None:
    print(f"{name}  ({res['n_train']} training / {res['n_val']} validation items, CNN "
          f"{res['epochs']} epochs at the full set, {res['seconds']} s)", flush=True)
    for point in res["curve"]:
        print(f"  fraction {point['fraction']:.2f} ({point['n_train']} items)", flush=True)
        for method in METHODS:
            if method in point:
                m = point[method]
                show(f"    {method} accuracy / macro-F1",
                     f"{m['accuracy']:.3f} / {m['macro_f1']:.3f}")


def main(quick: bool = False, out: Path | None = None) -> dict:
    from common import RESULTS

    out = Path(out or RESULTS)
    runs = {"jurkat_label_free": (JURKAT, [0, 2]), "chula_rbc12": (CHULA, None)}
    if quick:
        runs = {"jurkat_label_free": runs["jurkat_label_free"]}
    results: dict = {"quick": quick}
    for name, (data, channels) in runs.items():
        if not data.is_dir():
            print(f"{name}: {data} missing, skipped", flush=True)
            continue
        results[name] = run(name, data, channels, quick, out)
        report(name, results[name])
    write_result("baselines", results, out)
    return results


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    main(args.quick, args.out)
