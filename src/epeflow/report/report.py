"""The experiment report: one self-contained HTML file (images inlined as base64 PNG, no external assets).

It gathers what each stage left behind (metrics.json, model.pt's history, the matched pairs and their
weights, the enhanced frames) so a reader sees at a glance whether the run is real: a red banner marks
any result computed with random weights.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from epeflow.artifacts import enhanced as enhanced_dir_file
from epeflow.artifacts.matches import PairBoxes, read_pair_boxes
from epeflow.artifacts.metrics import read_metrics
from epeflow.artifacts.model import read_model
from epeflow.artifacts.weights import read_weights
from epeflow.errors import EpeflowError
from epeflow.io import atomic_path, read_image
from epeflow.log import progress
from epeflow.provenance import RANDOM_WEIGHTS_WARNING, marked_random
from epeflow.report.plots import histogram, training_curves
from epeflow.report.widgets import SCRIPT, class_bars, compare_slider
from epeflow.report.widgets import STYLE as WIDGET_STYLE

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 384
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
.banner { background: #c0392b; color: #fff; font-weight: bold; font-size: 1.3em; padding: 0.8em 1em;
          border-radius: 4px; margin-bottom: 1em; }
.banner small { display: block; font-weight: normal; font-size: 0.7em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
.frames td { text-align: center; }
code, pre { font-size: 0.85em; }
"""


@dataclass(frozen=True)
class ReportInputs:
    """The artifacts a report reads (as the report rule names them)."""

    metrics: Path
    model: Path
    enhanced: Path
    matches: Path
    pair_weights: Path
    preview: Path
    distances: Path
    src_crops: Path  # crops.zarr of both sides: the matches hold crop ids, the stores their frames
    dst_crops: Path


@dataclass(frozen=True)
class FrameRow:
    """One row of the source | enhanced grid (PNG bytes; `source` None when its file is gone)."""

    id: str
    source: bytes | None
    enhanced: bytes


# ---------------------------------------------------------------- reading the artifacts


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def thumbnail(image: np.ndarray, width: int = THUMBNAIL_WIDTH) -> np.ndarray:
    """(H, W, 3) uint8 downscaled to `width` pixels wide (aspect kept; never upscaled)."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    size = (width, max(1, round(h * width / w)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def read_png_file(path: Path, stage: str) -> bytes:
    """A figure another stage wrote, checked to be a readable image, as PNG bytes."""
    path = Path(path)
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
            is_png = im.format == "PNG"
    except FileNotFoundError:
        raise EpeflowError(f"{path} does not exist; run `epeflow {stage}` first") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise EpeflowError(f"{path} is not a readable image ({e}); rerun `epeflow {stage}`") from e
    return data if is_png else png_bytes(read_image(path))


def load_model_summary(path: Path) -> dict[str, Any]:
    """Everything in model.pt except the generator's weights (plain types; loaded with weights_only)."""
    return {k: v for k, v in read_model(path).items() if k != "generator"}


def matching_stats(matches: Any, boxes: PairBoxes, weights: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Summary numbers of matched pairs: how many, how many frames they cover, distances and weights."""
    dist = matches["dist"].to_numpy(dtype=np.float64)
    stats: dict[str, Any] = {
        "pairs": len(matches),
        "source crops with a match": int(matches["src_crop"].nunique()),
        "source frames covered": len(np.unique(boxes.src_frame)),
        "target frames covered": len(np.unique(boxes.dst_frame)),
        "max_dist": meta.get("max_dist"),
    }
    if len(dist):
        stats.update({"distance min": dist.min(), "distance median": np.median(dist), "distance max": dist.max()})
    if len(weights):
        stats.update({"weight min": weights.min(), "weight max": weights.max()})
    return stats


def frame_rows(enhanced_dir: Path, max_frames: int) -> list[FrameRow]:
    """Up to `max_frames` enhanced frames spread over the index, with their source frames, as thumbnails."""
    index, _ = enhanced_dir_file.read_index(enhanced_dir, allow_empty=True)
    if index.empty:
        return []
    picks = np.unique(np.linspace(0, len(index) - 1, num=min(max_frames, len(index))).round().astype(int))
    rows: list[FrameRow] = []
    for i in progress(picks, desc="report frames", unit="frame"):
        entry = index.iloc[int(i)]
        frame_id = str(entry["id"])
        enhanced = png_bytes(thumbnail(read_image(enhanced_dir_file.frame_path(enhanced_dir, frame_id))))
        source_path = entry.get("source_path")
        source = None
        if isinstance(source_path, str) and Path(source_path).is_file():
            source = png_bytes(thumbnail(read_image(Path(source_path))))
        else:
            log.warning("source frame %s of %s not found; shown as missing", source_path, frame_id)
        rows.append(FrameRow(frame_id, source, enhanced))
    return rows


# ---------------------------------------------------------------- HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def _fmt(value: Any) -> str:
    """A metric / statistic for a table cell."""
    if isinstance(value, Mapping) and "mean" in value:
        if value["mean"] is None:
            return "n/a"
        std = value.get("std")
        return f"{value['mean']:.4g} ± {std:.2g}" if isinstance(std, int | float) else f"{value['mean']:.4g}"
    if isinstance(value, Mapping) and "value" in value:
        return "n/a" if value["value"] is None else _fmt(value["value"])
    if isinstance(value, Mapping) and "skipped" in value:
        return f"skipped: {value['skipped']}"
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _kv_table(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


COMPARED = ("enhanced", "identity", "colour_transfer")  # metrics.json's sides (epeflow.metrics.baselines.SIDES)
COMPARED_TITLES = {"enhanced": "enhanced", "identity": "identity (rendered, untouched)",
                   "colour_transfer": "colour transfer (Reinhard)"}


def _side(m: Mapping[str, Any], side: str) -> Any:
    """One side of a compared metric; metrics.json files from before the baselines call identity `source`."""
    return m.get(side, m.get("source") if side == "identity" else None)


def _sub_rows(name: str, m: Mapping[str, Any]) -> list[tuple[str, list[Any], str]]:
    """Per pyramid level (SWD) and per class (cKVD) rows under a metric, for each side."""
    sides = [_side(m, side) for side in COMPARED]
    rows: list[tuple[str, list[Any], str]] = []
    levels = max((len(v.get("per_level", [])) for v in sides if isinstance(v, Mapping)), default=0)
    for k in range(levels):
        cells = [v["per_level"][k] if isinstance(v, Mapping) and k < len(v.get("per_level", [])) else None
                 for v in sides]
        rows.append((f"{name} level {k}", cells, f"pyramid level {k} (1/{2**k} resolution)"))
    classes: dict[str, None] = {}
    for v in sides:
        if isinstance(v, Mapping) and isinstance(v.get("per_class"), Mapping):
            classes.update(dict.fromkeys(v["per_class"]))
    for c in classes:
        cells = [v["per_class"].get(c) if isinstance(v, Mapping) and isinstance(v.get("per_class"), Mapping) else None
                 for v in sides]
        pairs = next((cell.get("pairs") for cell in cells if isinstance(cell, Mapping)), None)
        rows.append((f"{name} {c}", cells, f"class {c} ({pairs} pairs)"))
    return rows


def _computed_how(compared: Mapping[str, Mapping[str, Any]], baselines: Any) -> str:
    """A folded section with each metric's provenance and how the baselines were made."""
    parts = ["<details><summary>How each number was computed</summary>"]
    if isinstance(baselines, Mapping):
        parts.append("<h4>baselines</h4>" + _kv_table(baselines.items()))
    for name, m in compared.items():
        record = m.get("provenance")
        settings = {k: v for k, v in m.items()
                    if k not in (*COMPARED, "source", "description", "lower_is_better", "provenance")}
        if isinstance(record, Mapping) or settings:
            items = [*settings.items(), *(record.items() if isinstance(record, Mapping) else ())]
            parts.append(f"<h4>{_e(name)}</h4>" + _kv_table(items))
    parts.append("</details>")
    return "".join(parts)


def _metrics_section(doc: Mapping[str, Any]) -> str:
    metrics = doc.get("metrics", {})
    compared = {k: v for k, v in metrics.items() if isinstance(v, Mapping) and "enhanced" in v}
    parts = ["<section id='metrics'><h2>Metrics</h2>"]
    if compared:
        heads = "".join(f"<th>{_e(COMPARED_TITLES[side])}</th>" for side in COMPARED)
        parts.append(f"<table><tr><th>metric</th>{heads}<th>better</th><th>what</th></tr>")
        for name, m in compared.items():
            lower = m.get("lower_is_better", True)
            better = "—" if lower is None else "lower" if lower else "higher"
            rows = [(name, [_side(m, side) for side in COMPARED], m.get("description", "")), *_sub_rows(name, m)]
            for label, cells, what in rows:
                tds = "".join(f"<td class='num'>{_e('—' if c is None else _fmt(c))}</td>" for c in cells)
                parts.append(f"<tr><th>{_e(label)}</th>{tds}<td>{_e(better)}</td><td>{_e(what)}</td></tr>")
        parts.append("</table>")
        parts.append(_computed_how(compared, doc.get("baselines")))
    for name, m in metrics.items():
        if name in compared or not isinstance(m, Mapping):
            continue
        parts.append(f"<h3>{_e(name)}</h3><p>{_e(m.get('description', ''))}</p>")
        parts.append(_kv_table((k, v) for k, v in m.items() if k != "description"))
    frames = doc.get("frames", {})
    if frames:
        parts.append("<h3>Frames compared</h3>" + _kv_table(frames.items()))
    if doc.get("provenance"):
        parts.append("<details><summary>Provenance of the metrics</summary>")
        parts.append(_kv_table(doc["provenance"].items()) + "</details>")
    parts.append("</section>")
    return "".join(parts)


def _ckvd_section(doc: Mapping[str, Any]) -> str:
    """Per-class cKVD as bars, one per compared set (empty when cKVD was not computed)."""
    m = doc.get("metrics", {}).get("ckvd")
    if not isinstance(m, Mapping):
        return ""
    if "skipped" in m and "enhanced" not in m:
        return f"<section id='ckvd'><h2>cKVD per class</h2><p>skipped: {_e(m['skipped'])}</p></section>"
    per_side = {side: v.get("per_class") or {} for side in COMPARED
                if isinstance(v := _side(m, side), Mapping)}
    if not any(per_side.values()):
        return ""
    return ("<section id='ckvd'><h2>cKVD per class</h2><p>Class-wise KVD x1000 of each compared set against the "
            "real crops of matching layout (lower is more realistic); classes with too few pairs have no value.</p>"
            f"{class_bars(per_side, COMPARED_TITLES, COMPARED)}</section>")


def _summary_section(experiment: str, doc: Mapping[str, Any], model: Mapping[str, Any]) -> str:
    history = model.get("history") or {}
    iterations = history.get("iteration") or []
    gbuffers = model.get("gbuffers") or {}
    items: list[tuple[str, Any]] = [
        ("experiment", experiment),
        ("enhanced frames", doc.get("frames", {}).get("enhanced")),
        ("real frames", doc.get("frames", {}).get("real")),
        ("iterations trained", iterations[-1] if iterations else None),
        ("G-buffers", f"{gbuffers.get('mode')} ({gbuffers.get('channels')} channels)" if gbuffers else None),
    ]
    parts = ["<section id='summary'><h2>Experiment</h2>", _kv_table(items)]
    for key, title in (("generator_config", "Generator"), ("train", "Training settings"), ("provenance", "Model")):
        if isinstance(model.get(key), Mapping) and model[key]:
            parts.append(f"<details><summary>{_e(title)}</summary>{_kv_table(model[key].items())}</details>")
    parts.append("</section>")
    return "".join(parts)


def render_html(
    experiment: str,
    metrics_doc: Mapping[str, Any],
    model: Mapping[str, Any],
    stats: Mapping[str, Any],
    figures: Mapping[str, bytes | None],
    frames: list[FrameRow],
    random_artifacts: list[str],
) -> str:
    """The report page. `figures`: training, distance_hist, weight_hist, preview, distances (PNG bytes)."""
    parts = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        f"<title>epeflow report: {_e(experiment)}</title><style>{_STYLE}{WIDGET_STYLE}</style></head><body>",
    ]
    if random_artifacts:
        parts.append(
            f"<div class='banner' role='alert'>{_e(RANDOM_WEIGHTS_WARNING)}"
            f"<small>computed with random weights: {_e(', '.join(random_artifacts))}</small></div>"
        )
    parts.append(f"<h1>epeflow report: {_e(experiment)}</h1>")
    parts.append(_summary_section(experiment, metrics_doc, model))
    parts.append(_metrics_section(metrics_doc))
    parts.append(_ckvd_section(metrics_doc))

    parts.append("<section id='training'><h2>Training</h2>")
    training = figures.get("training")
    parts.append(_img(training, "training curves") if training else "<p>No training history recorded.</p>")
    parts.append("</section>")

    parts.append("<section id='matching'><h2>Matching</h2>")
    parts.append(_kv_table(stats.items()))
    for key, alt in (("distance_hist", "distance histogram of matched pairs"),
                     ("weight_hist", "sampling-weight histogram of matched pairs"),
                     ("distances", "kNN distance histogram (matching stage)"),
                     ("preview", "preview of matched crops")):
        if figures.get(key):
            parts.append(f"<figure>{_img(figures[key], alt)}<figcaption>{_e(alt)}</figcaption></figure>")
    parts.append("</section>")

    parts.append("<section id='frames'><h2>Rendered | enhanced</h2>"
                 "<p>Drag the slider across a frame: left of it the rendered frame, right of it its enhanced "
                 "version.</p>")
    for row in frames:
        if row.source:
            parts.append(compare_slider(row.id, row.source, row.enhanced))
        else:
            parts.append(f"<div class='compare-row'><p>{_e(row.id)}: source frame not found</p>"
                         f"{_img(row.enhanced, f'enhanced {row.id}')}</div>")
    parts.append(f"</section><script>{SCRIPT}</script></body></html>\n")
    return "".join(parts)


# ---------------------------------------------------------------- the stage


def run_report(experiment: str, out: Path, inputs: ReportInputs, max_frames: int = 8) -> bool:
    """Write the report HTML atomically; returns whether anything in it was computed with random weights."""
    metrics_doc = read_metrics(inputs.metrics)
    model = load_model_summary(inputs.model)
    matches, boxes, matches_meta = read_pair_boxes(inputs.matches, inputs.src_crops, inputs.dst_crops)
    weights, weights_meta = read_weights(inputs.pair_weights)
    if len(weights) != len(matches):
        raise EpeflowError(
            f"{inputs.pair_weights} has {len(weights)} rows but {inputs.matches} has {len(matches)}; "
            "the weights are stale: rerun `epeflow weights`"
        )
    enhanced_meta = enhanced_dir_file.read_index_meta(inputs.enhanced)

    flags = {
        "metrics": marked_random(metrics_doc),
        "model": marked_random(model),
        "enhanced frames": marked_random(enhanced_meta),
        "matches": marked_random(matches_meta),
        "pair weights": marked_random(weights_meta),
    }
    random_artifacts = [name for name, flag in flags.items() if flag]

    figures = {
        "training": training_curves(model.get("history") or {}),
        "distance_hist": histogram(matches["dist"].to_numpy(), "matched pairs", "squared feature distance"),
        "weight_hist": histogram(weights, "sampling weights", "weight", log_y=True),
        "preview": read_png_file(inputs.preview, "preview"),
        "distances": read_png_file(inputs.distances, "knn"),
    }
    stats = matching_stats(matches, boxes, weights, matches_meta)
    frames = frame_rows(Path(inputs.enhanced), max_frames)
    page = render_html(experiment, metrics_doc, model, stats, figures, frames, random_artifacts)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote %s (%d frames%s)", out, len(frames), ", RANDOM WEIGHTS" if random_artifacts else "")
    return bool(random_artifacts)
