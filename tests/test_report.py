from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from crop_fixtures import make_crop_store
from eval_fixtures import make_experiment
from PIL import Image

from epeflow.cli import main
from epeflow.errors import EpeflowError
from epeflow.io import write_json, write_png, write_table
from epeflow.provenance import RANDOM_WEIGHTS_WARNING, stamp
from epeflow.report.report import ReportInputs, run_report

VOID = {"meta", "img", "br", "hr", "link", "input"}


class _Checker(HTMLParser):
    """Collects tags, images and text; fails on unbalanced non-void elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.images: list[dict[str, str]] = []
        self.classes: list[str] = []
        self.text: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.classes += (attrs.get("class") or "").split()
        if tag == "img":
            self.images.append(attrs)
        elif tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.doctype and checker.stack == []
    return checker


def _artifacts(root: Path, random: dict[str, bool]) -> ReportInputs:
    """Every input of the report, small and per the contracts; `random` flags per artifact."""
    exp = make_experiment(root, random=random.get("enhanced", False))
    metrics = root / "metrics.json"
    doc = {
        "experiment": "demo",
        "metrics": {
            "kid_vgg": {"description": "KID", "lower_is_better": True, "enhanced": {"mean": 0.01, "std": 0.002},
                        "identity": {"mean": 0.05, "std": 0.003}, "colour_transfer": {"mean": 0.03, "std": 0.001},
                        "features": "vgg16_relu5_3_mean",
                        "provenance": {"rng": "numpy.random.RandomState(2020)", "samples": {"enhanced": 4}}},
            "fid_vgg": {"description": "FID", "lower_is_better": True, "enhanced": {"value": 12.5, "n_x": 4},
                        "identity": {"value": 30.25, "n_x": 4}, "colour_transfer": {"skipped": "imaginary component"}},
            "swd": {"description": "SWD", "lower_is_better": True, "enhanced": {"mean": 0.15, "per_level": [0.2, 0.1]},
                    "identity": {"mean": 0.35, "per_level": [0.4, 0.3]},
                    "colour_transfer": {"mean": 0.25, "per_level": [0.3, 0.2]}},
            "ckvd": {"description": "cKVD", "lower_is_better": True,
                     "enhanced": {"mean": 1.5, "per_class": {"road": {"value": 1.5, "pairs": 6},
                                                             "car": {"value": None, "pairs": 1}}},
                     "identity": {"mean": 2.5, "per_class": {"road": {"value": 2.5, "pairs": 6},
                                                             "car": {"value": None, "pairs": 1}}},
                     "colour_transfer": {"mean": None, "per_class": {}}},
            "lpips": {"description": "LPIPS source vs enhanced", "lower_is_better": None,
                      "enhanced": {"mean": 0.21, "std": 0.05, "n": 4}, "identity": {"mean": 0.0, "std": 0.0, "n": 4},
                      "colour_transfer": {"mean": 0.07, "std": 0.01, "n": 4}},
            "swd_lab": {"description": "old file: a baseline called source", "lower_is_better": True,
                        "enhanced": 4.5, "source": 14.25},
            "skvd": {"skipped": "needs at least 2 enhanced frames"},
        },
        "frames": {"enhanced": 4, "real": 12},
        "baselines": {"colour_transfer": {"method": "Reinhard et al. 2001 in CIELab"}},
        "random_weights": random.get("metrics", False),
        "provenance": stamp(random.get("metrics", False)),
    }
    if random.get("metrics"):
        doc["warning"] = RANDOM_WEIGHTS_WARNING
    write_json(metrics, doc)

    model = root / "model.pt"
    torch.save({
        "format": "epeflow-model/1",
        "generator": {"conv.weight": torch.zeros(4, 3, 3, 3)},
        "generator_config": {"channels": 24, "blocks": 2},
        "gbuffers": {"channels": 5, "names": ["a", "b", "c", "d", "e"], "mean": [0.0] * 5, "std": [1.0] * 5,
                     "mode": "real"},
        "train": {"iterations": 30, "batch_size": 2},
        "provenance": stamp(random.get("model", False)),
        "history": {"iteration": [10, 20, 30], "gan": [1.0, 0.7, 0.6], "lpips": [0.3, 0.25, 0.2]},
    }, model)

    rng = np.random.default_rng(0)
    n = 40
    src_crops = make_crop_store(root / "src_crops.zarr", np.repeat(np.arange(5), 2), np.zeros((10, 4)),
                                np.zeros((10, 8)), num_frames=5)
    dst_crops = make_crop_store(root / "dst_crops.zarr", rng.integers(0, 7, 50), np.zeros((50, 4)),
                                np.zeros((50, 8)), num_frames=7)
    matches = pd.DataFrame({
        "src_crop": np.repeat(np.arange(10), 4).astype(np.int64), "dst_crop": rng.integers(0, 50, n).astype(np.int64),
        "dist": rng.random(n).astype(np.float32),
    })
    write_table(root / "matches.parquet", matches, {"max_dist": 1.0, "random_weights": random.get("matches", False)})
    write_table(root / "weights.parquet", pd.DataFrame({"weight": rng.random(n) + 0.5}),
                {"provenance": stamp(random.get("weights", False))})
    write_png(root / "preview.png", (rng.random((30, 60, 3)) * 255).astype(np.uint8))
    write_png(root / "distances.png", (rng.random((20, 40, 3)) * 255).astype(np.uint8))
    return ReportInputs(metrics, model, exp.enhanced, root / "matches.parquet", root / "weights.parquet",
                        root / "preview.png", root / "distances.png", src_crops, dst_crops)


def test_report_embeds_everything_and_parses(tmp_path):
    inputs = _artifacts(tmp_path, {})
    out = tmp_path / "report.html"
    assert run_report("demo", out, inputs) is False
    page = out.read_text(encoding="utf-8")
    checker = _parse(page)
    # training curves, 2 match histograms, distances, preview, 4 source + 4 enhanced frames
    assert len(checker.images) == 5 + 8
    for img in checker.images:
        assert img["src"].startswith("data:image/png;base64,") and img["alt"]
        with Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))) as im:
            im.verify()
    assert "http://" not in page and "https://" not in page  # self-contained
    text = " ".join(checker.text)
    assert "kid_vgg" in text and "0.01 ± 0.002" in text and "0.05 ± 0.003" in text and "0.03 ± 0.001" in text
    assert "identity (rendered, untouched)" in text and "colour transfer (Reinhard)" in text
    assert "30.25" in text and "skipped: imaginary component" in text
    assert "ckvd road" in text and "class road (6 pairs)" in text and "ckvd car" in text and "n/a" in text
    assert "14.25" in text  # `source` of an older metrics.json shows as identity
    assert "numpy.random.RandomState(2020)" in text and "vgg16_relu5_3_mean" in text and "Reinhard et al." in text
    assert "source frames covered" in text and "40" in text
    assert "skvd" in text and "needs at least 2 enhanced frames" in text
    assert "swd level 1" in text and "0.3" in text and "1/2 resolution" in text  # per pyramid level, both sides
    assert "banner" not in checker.classes and RANDOM_WEIGHTS_WARNING not in page
    # a before / after slider per frame, and cKVD bars per class and compared set
    assert checker.classes.count("compare") == 4 and checker.classes.count("slider") == 4
    assert checker.classes.count("before") == checker.classes.count("after") == 4
    assert "bar-enhanced" in checker.classes and "bar-identity" in checker.classes
    assert "road (6 pairs)" in text and "n/a (too few pairs)" in text
    assert "width:60.0%" in page and "width:100.0%" in page  # road: 1.5 and 2.5 of the largest, 2.5


@pytest.mark.parametrize("artifact", ["metrics", "model", "enhanced", "matches", "weights"])
def test_banner_when_any_artifact_is_random(tmp_path, artifact):
    inputs = _artifacts(tmp_path, {artifact: True})
    out = tmp_path / "report.html"
    assert run_report("demo", out, inputs) is True
    checker = _parse(out.read_text(encoding="utf-8"))
    assert "banner" in checker.classes
    assert RANDOM_WEIGHTS_WARNING in " ".join(checker.text)


def test_text_is_escaped(tmp_path):
    inputs = _artifacts(tmp_path, {})
    out = tmp_path / "report.html"
    run_report("<script>alert(1)</script>", out, inputs)
    page = out.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    _parse(page)


def test_missing_source_frames_are_shown_as_missing(tmp_path):
    inputs = _artifacts(tmp_path, {})
    for path in pd.read_parquet(inputs.enhanced / "index.parquet")["source_path"]:
        Path(path).unlink()
    out = tmp_path / "report.html"
    run_report("demo", out, inputs, max_frames=2)
    checker = _parse(out.read_text(encoding="utf-8"))
    assert len(checker.images) == 5 + 2
    assert "source frame not found" in " ".join(checker.text)


def test_stale_pair_weights_are_an_error(tmp_path):
    inputs = _artifacts(tmp_path, {})
    write_table(inputs.pair_weights, pd.DataFrame({"weight": [1.0, 2.0]}), {})
    with pytest.raises(EpeflowError, match="weights.parquet has 2 rows"):
        run_report("demo", tmp_path / "report.html", inputs)
    assert not (tmp_path / "report.html").exists()


def test_not_a_model_file_is_an_error(tmp_path):
    inputs = _artifacts(tmp_path, {})
    torch.save({"generator": {}}, inputs.model)
    with pytest.raises(EpeflowError, match="model.pt is not an epeflow model"):
        run_report("demo", tmp_path / "report.html", inputs)


def test_cli_report(tmp_path, capsys):
    i = _artifacts(tmp_path, {"model": True})
    out = tmp_path / "results" / "demo" / "report.html"
    args = ["report", "demo", str(out), "--metrics", str(i.metrics), "--model", str(i.model), "--enhanced",
            str(i.enhanced), "--matches", str(i.matches), "--pair-weights", str(i.pair_weights), "--preview",
            str(i.preview), "--distances", str(i.distances), "--src-crops", str(i.src_crops),
            "--dst-crops", str(i.dst_crops)]
    assert main(args) == 0
    assert "banner" in _parse(out.read_text(encoding="utf-8")).classes
    i.preview.unlink()
    assert main(args) == 2
    assert "preview.png does not exist" in capsys.readouterr().err
