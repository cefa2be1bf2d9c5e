"""The report page in a real headless browser (Debian's Chromium): the DOM after its script ran, and pixels.

Chromium is looked up on PATH; where it is absent and this runs as root with apt-get, it is installed once
(`apt-get install -y chromium`); otherwise the tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from epeflow.report.report import FrameRow, png_bytes, render_html
from epeflow.report.widgets import SIDE_COLOURS

pytestmark = pytest.mark.browser

BEFORE = (200, 0, 200)  # magenta "rendered" frames
AFTER = (0, 200, 200)  # cyan "enhanced" frames
WINDOW = (1200, 3000)


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=900,
                           check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        path = _find_chromium()
    if path is None:
        pytest.skip("no Chromium: `apt-get install -y chromium` (Debian) could not install it here")
    return path


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=3000", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _frame(colour: tuple[int, int, int]) -> bytes:
    return png_bytes(np.broadcast_to(np.array(colour, dtype=np.uint8), (120, 360, 3)).copy())


def _metrics() -> dict:
    per_class = {"road": {"value": 1.5, "pairs": 6}, "car": {"value": 3.0, "pairs": 4}}
    return {
        "experiment": "browser",
        "metrics": {
            "kid_vgg": {"description": "KID", "lower_is_better": True, "enhanced": {"mean": 0.01, "std": 0.002},
                        "identity": {"mean": 0.05, "std": 0.003}, "colour_transfer": {"mean": 0.03, "std": 0.001},
                        "provenance": {"rng": "numpy.random.RandomState(2020)"}},
            "tof": {"description": "tOF", "lower_is_better": True, "enhanced": {"mean": 0.4, "std": 0.1, "n": 3},
                    "identity": {"mean": 0.0, "std": 0.0, "n": 3}, "colour_transfer": {"mean": 0.1, "std": 0.0}},
            "ckvd": {"description": "cKVD", "lower_is_better": True,
                     "enhanced": {"mean": 2.25, "per_class": per_class},
                     "identity": {"mean": 4.0, "per_class": {"road": {"value": 4.0, "pairs": 6},
                                                             "car": {"value": 4.0, "pairs": 4}}},
                     "colour_transfer": {"mean": 3.0, "per_class": {"road": {"value": 2.0, "pairs": 6},
                                                                    "car": {"value": None, "pairs": 4}}}},
        },
        "frames": {"enhanced": 2, "real": 4},
        "provenance": {"libraries": {"numpy": "2"}},
    }


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    frames = [FrameRow(f"s00_f{i:04d}", _frame(BEFORE), _frame(AFTER)) for i in range(2)]
    html = render_html("browser", _metrics(), {}, {"pairs": 3}, {}, frames, [])
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def _pixels(image: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(image.astype(int) - np.array(colour)).max(axis=-1) <= tol).sum())


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_dom_after_script_has_slider_table_and_bars(chromium, page):
    dom = _run(chromium, "--dump-dom", page.as_uri()).stdout
    assert dom.count('class="compare"') == 2 and dom.count('type="range"') == 2
    # the page's script ran: it set each enhanced frame's clip and the divider from the slider (50 %)
    assert dom.count("clip-path: inset(0px 0px 0px 50%)") == 2 and "left: 50%" in dom
    assert "kid_vgg" in dom and "colour transfer (Reinhard)" in dom and "tof" in dom
    assert "numpy.random.RandomState(2020)" in dom  # provenance, folded
    assert 'class="bar bar-enhanced"' in dom and 'data-class="car"' in dom and "n/a (too few pairs)" in dom


def test_screenshot_shows_frames_halves_and_bar_colours(chromium, page, tmp_path):
    shot = tmp_path / "shot.png"
    _run(chromium, f"--screenshot={shot}", page.as_uri())
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (WINDOW[1], WINDOW[0]) and image.std() > 10  # not blank
    # the slider starts in the middle: half of each frame rendered, half enhanced (2 frames of 120x360)
    before, after = _pixels(image, BEFORE), _pixels(image, AFTER)
    assert 0.6 * 2 * 180 * 120 < before < 1.2 * 2 * 180 * 120, before
    assert 0.6 * 2 * 180 * 120 < after < 1.2 * 2 * 180 * 120, after
    for side in ("enhanced", "identity", "colour_transfer"):  # cKVD bars and legend in each set's colour
        assert _pixels(image, _hex(SIDE_COLOURS[side]), tol=6) > 500, side


def test_moving_the_slider_wipes_to_the_enhanced_frame(chromium, page, tmp_path):
    moved = tmp_path / "moved.html"
    script = ("<script>document.querySelectorAll('.slider').forEach(function (s) { s.value = 0; "
              "s.dispatchEvent(new Event('input')); });</script>")
    moved.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    shot = tmp_path / "moved.png"
    _run(chromium, f"--screenshot={shot}", moved.as_uri())
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert _pixels(image, BEFORE) < 200  # at most the divider's anti-aliased edge
    assert _pixels(image, AFTER) > 0.9 * 2 * 360 * 120
