from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from epeflow import io
from epeflow.errors import EpeflowError


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path):
    final = tmp_path / "out" / "file.txt"
    with io.atomic_path(final) as tmp:
        tmp.write_text("ok")
        assert not final.exists()
    assert final.read_text() == "ok"

    with pytest.raises(ValueError), io.atomic_path(final) as tmp:
        tmp.write_text("half")
        raise ValueError("killed")
    assert final.read_text() == "ok"  # the old output survives a failed rewrite
    assert [p.name for p in final.parent.iterdir()] == ["file.txt"]  # no temp left behind


def test_atomic_path_replaces_directories(tmp_path):
    final = tmp_path / "store.zarr"
    final.mkdir()
    (final / "old").write_text("x")
    with io.atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in final.iterdir()) == ["new"]


def test_partial_dir_survives_and_finalizes(tmp_path):
    final = tmp_path / "labels"
    part = io.partial_dir(final)
    (part / "a.png").write_bytes(b"1")
    assert io.partial_dir(final) == part and (part / "a.png").exists()  # a rerun finds earlier work
    io.finalize_dir(part, final)
    assert (final / "a.png").exists() and not part.exists()


def test_table_round_trip_keeps_metadata(tmp_path):
    df = pd.DataFrame({"a": np.arange(3), "b": ["x", "y", None]})
    io.write_table(tmp_path / "t.parquet", df, {"random_weights": True, "n": np.int64(3)})
    back, meta = io.read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, df)
    assert meta == {"random_weights": True, "n": 3}
    assert io.read_table_meta(tmp_path / "t.parquet") == meta


def test_table_errors_name_the_file(tmp_path):
    with pytest.raises(EpeflowError, match="missing.parquet does not exist"):
        io.read_table(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(EpeflowError, match="bad.parquet is not a readable parquet"):
        io.read_table(tmp_path / "bad.parquet")


def test_read_image_detects_truncation(tmp_path):
    rgb = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    good = tmp_path / "good.png"
    Image.fromarray(rgb).save(good)
    np.testing.assert_array_equal(io.read_image(good), rgb)

    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(EpeflowError, match="cut.png is corrupt or truncated"):
        io.read_image(truncated)
    with pytest.raises(EpeflowError, match="nope.png does not exist"):
        io.read_image(tmp_path / "nope.png")


def test_16_bit_pngs_keep_every_bit_and_read_as_8_bit_rgb(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    io.write_png(tmp_path / "g.png", grey)
    with Image.open(tmp_path / "g.png") as im:  # Pillow reads 16-bit grey exactly
        np.testing.assert_array_equal(np.asarray(im).astype(np.uint16), grey)
    rgb = rng.integers(0, 65536, (6, 9, 3), dtype=np.uint16)
    io.write_png(tmp_path / "rgb16.png", rgb)
    with Image.open(tmp_path / "rgb16.png") as im:
        assert im.size == (9, 6)
    np.testing.assert_array_equal(io.read_image(tmp_path / "rgb16.png"), (rgb >> 8).astype(np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        io.write_png(tmp_path / "f.png", rgb.astype(np.float32))


def test_labels_round_trip_and_reject_rgb(tmp_path):
    lab = np.arange(24, dtype=np.uint8).reshape(4, 6)
    io.write_png(tmp_path / "l.png", lab)
    np.testing.assert_array_equal(io.read_label(tmp_path / "l.png"), lab)
    io.write_png(tmp_path / "rgb.png", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(EpeflowError, match="rgb.png has mode RGB"):
        io.read_label(tmp_path / "rgb.png")


def test_json_round_trip(tmp_path):
    io.write_json(tmp_path / "m.json", {"x": np.float32(1.5), "a": np.arange(2)})
    assert io.read_json(tmp_path / "m.json") == {"x": 1.5, "a": [0, 1]}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(EpeflowError, match="bad.json is not valid JSON"):
        io.read_json(tmp_path / "bad.json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a/b/c.png", "a__b__c"), ("frame.jpg", "frame"), ("seq1/frames/0001.png", "seq1__frames__0001")],
)
def test_safe_id(text, expected):
    assert io.safe_id(text) == expected


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_sweeping_writer_removes_what_killed_writers_left(tmp_path):
    """Temporaries of a killed writer (its process gone) are removed; those of a running one and of other
    outputs stay."""
    dead, alive = _gone_pid(), os.getpid()
    killed = tmp_path / f".store.zarr.tmp-{dead}-0123abcd"
    (killed / "chunks").mkdir(parents=True)
    running = tmp_path / f".store.zarr.tmp-{alive}-89abcdef"
    running.write_text("being written")
    other = tmp_path / f".other.zarr.tmp-{dead}-0123abcd"
    other.write_text("another output's")
    with io.atomic_path(tmp_path / "store.zarr") as tmp:  # no sweep: small outputs do not list their folder
        tmp.write_text("a")
    assert killed.exists()
    with io.atomic_path(tmp_path / "store.zarr", sweep=True) as tmp:
        tmp.write_text("b")
    assert not killed.exists() and running.exists() and other.exists()
    assert io.remove_stale_temporaries(tmp_path) == 1 and not other.exists() and running.exists()


def test_16_bit_grey_frames_keep_their_brightness_and_float_images_are_refused(tmp_path):
    grey = np.linspace(0, 65535, 8 * 10).reshape(8, 10).astype(np.uint16)  # mid-grey on average
    io.write_png(tmp_path / "g16.png", grey)
    rgb = io.read_image(tmp_path / "g16.png")
    assert rgb.shape == (8, 10, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 1], (grey >> 8).astype(np.uint8))  # not clipped to near-white
    assert 120 < rgb.mean() < 135
    Image.fromarray(np.full((4, 5), 0.5, np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(EpeflowError, match="f.tif holds floating-point samples"):
        io.read_image(tmp_path / "f.tif")
