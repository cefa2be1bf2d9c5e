"""Interactive parts of the report page in plain HTML, CSS and a few lines of inline JavaScript (no CDN,
no library), so report.html stays one self-contained file that also opens from `snakemake --report`.

- `compare_slider`: a rendered frame with its enhanced version on top, cut at a slider's position; drag the
  slider to wipe between before and after.
- `class_bars`: a horizontal bar per class and compared set (cKVD per class), scaled to the largest value.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

# One colour per compared set, the same in the bars' legend and in the bars.
SIDE_COLOURS = {"enhanced": "#1f77b4", "identity": "#ff7f0e", "colour_transfer": "#2ca02c"}

STYLE = """
.compare { position: relative; display: inline-block; line-height: 0; margin: 0.3em 0; }
.compare img { display: block; max-width: 100%; height: auto; }
.compare .after { position: absolute; top: 0; left: 0; clip-path: inset(0 0 0 50%); }
.compare .divider { position: absolute; top: 0; bottom: 0; left: 50%; width: 2px; background: #fff;
                    box-shadow: 0 0 2px #000; pointer-events: none; }
.compare .slider { position: absolute; left: 0; bottom: 4px; width: 100%; margin: 0; }
.compare-row { margin-bottom: 1em; }
.compare-row .labels { display: flex; justify-content: space-between; font-size: 0.85em; max-width: 384px; }
.bars { margin: 0.5em 0 1em; }
.bars .cls { display: grid; grid-template-columns: 10em 1fr; gap: 0.2em 0.6em; align-items: center;
             margin-bottom: 0.4em; }
.bars .track { display: flex; align-items: center; gap: 0.4em; height: 1.1em; }
.bars .bar { height: 100%; min-width: 1px; }
.bars .value { font-size: 0.8em; font-variant-numeric: tabular-nums; white-space: nowrap; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: 1em; height: 1em; vertical-align: middle; margin-right: 0.3em; }
"""

SCRIPT = """
document.querySelectorAll('.compare').forEach(function (box) {
  var slider = box.querySelector('.slider'), after = box.querySelector('.after'),
      divider = box.querySelector('.divider');
  function show() {
    var v = slider.value;
    after.style.clipPath = 'inset(0 0 0 ' + v + '%)';
    divider.style.left = v + '%';
  }
  slider.addEventListener('input', show);
  show();
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_img(data: bytes, alt: str, cls: str = "") -> str:
    """An <img> with the PNG inlined as base64."""
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def compare_slider(frame_id: str, before: bytes, after: bytes, start: int = 50) -> str:
    """Before (rendered) and after (enhanced) of one frame in one box, wiped by a range slider."""
    return (
        f'<div class="compare-row"><div class="labels"><span>rendered</span><span>{_e(frame_id)}</span>'
        f'<span>enhanced</span></div><div class="compare" data-frame="{_e(frame_id)}">'
        f'{data_img(before, f"source {frame_id}", "before")}{data_img(after, f"enhanced {frame_id}", "after")}'
        f'<div class="divider"></div><input class="slider" type="range" min="0" max="100" value="{start}" '
        f'aria-label="wipe between rendered and enhanced frame {_e(frame_id)}"></div></div>'
    )


def _number(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("value", value.get("mean"))
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def class_bars(per_side: Mapping[str, Mapping[str, Any]], titles: Mapping[str, str], sides: Sequence[str]) -> str:
    """Bars of one value per (class, side): `per_side[side][class]` is a number or {"value", "pairs"}."""
    classes: dict[str, None] = {}
    for side in sides:
        classes.update(dict.fromkeys(per_side.get(side, {})))
    values = {(c, s): _number(per_side.get(s, {}).get(c)) for c in classes for s in sides}
    top = max((abs(v) for v in values.values() if v is not None), default=0.0) or 1.0
    legend = "".join(f'<span><i style="background:{SIDE_COLOURS.get(s, "#888")}"></i>{_e(titles.get(s, s))}</span>'
                     for s in sides)
    parts = [f'<div class="bars"><div class="legend">{legend}</div>']
    for c in classes:
        pairs = next((cell.get("pairs") for s in sides if isinstance(cell := per_side.get(s, {}).get(c), Mapping)),
                     None)
        label = f"{c} ({pairs} pairs)" if pairs is not None else c
        tracks = []
        for s in sides:
            v = values[(c, s)]
            if v is None:
                tracks.append('<div class="track"><span class="value">n/a (too few pairs)</span></div>')
                continue
            width = max(0.0, 100.0 * v / top)
            tracks.append(f'<div class="track"><div class="bar bar-{_e(s)}" data-side="{_e(s)}" '
                          f'style="width:{width:.1f}%;background:{SIDE_COLOURS.get(s, "#888")}" '
                          f'title="{_e(titles.get(s, s))}: {v:.4g}"></div><span class="value">{v:.4g}</span></div>')
        parts.append(f'<div class="cls" data-class="{_e(c)}"><div>{_e(label)}</div><div>{"".join(tracks)}</div></div>')
    parts.append("</div>")
    return "".join(parts)
