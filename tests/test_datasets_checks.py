"""Per-frame checks: full image decode, companion sizes from headers, errors naming the file."""

from __future__ import annotations

import io as _io
import zipfile

import numpy as np
import pytest
from dataset_fixtures import truncate, write_gbuffer, write_label, write_rgb

from epeflow.datasets.checks import FrameInfo, check_frame, check_frames, gbuffer_shape, image_header_size
from epeflow.errors import EpeflowError


def _row(image, **kw) -> dict:
    return {"path": str(image), "robust_label_path": None, "gbuffer_path": None, "gt_label_path": None,
            "problem": None, **{k: str(v) for k, v in kw.items()}}


def test_good_frame_reports_its_size(tmp_path):
    img = write_rgb(tmp_path / "a.png", 12, 16)
    info = check_frame(_row(img, gt_label_path=write_label(tmp_path / "gt.png", 12, 16),
                            robust_label_path=write_label(tmp_path / "rl.png", 12, 16),
                            gbuffer_path=write_gbuffer(tmp_path / "g.npz", 12, 16)), "data", [])
    assert info[:4] == (12, 16, img.stat().st_size, img.stat().st_mtime) and len(info.digest) == 32


def test_gbuffer_shape_reads_only_the_header(tmp_path):
    """The .npy header inside the .npz is enough: a member whose data is cut off still gives its shape."""
    buf = _io.BytesIO()
    np.lib.format.write_array(buf, np.zeros((120, 160, 7), np.float16))
    header_only = buf.getvalue()[:200]  # header plus a few bytes of 268800 bytes of data
    path = tmp_path / "g.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("data.npy", header_only)
    with pytest.raises(ValueError):
        np.load(path)["data"]  # loading the array fails...
    assert gbuffer_shape(path, "data") == (120, 160, 7)  # ...its shape does not need it
    np.save(tmp_path / "g.npy", np.zeros((3, 4, 2)))
    assert gbuffer_shape(tmp_path / "g.npy", "data") == (3, 4, 2)
    assert gbuffer_shape(write_label(tmp_path / "depth.png", 5, 6), "data") == (5, 6)
    (tmp_path / "frame_dir").mkdir()
    assert gbuffer_shape(tmp_path / "frame_dir", "data") is None


@pytest.mark.parametrize("case", ["missing_image", "truncated_image", "garbage_image", "label_size", "gbuffer_size",
                                  "gbuffer_key", "gbuffer_corrupt", "gbuffer_missing", "label_missing", "listed"])
def test_bad_frames_name_the_file(tmp_path, case):
    img = write_rgb(tmp_path / "img.png", 12, 16)
    row = _row(img)
    culprit = img
    if case == "missing_image":
        culprit = tmp_path / "none.png"
        row = _row(culprit)
    elif case == "truncated_image":
        truncate(write_rgb(tmp_path / "big.png", 64, 64), 0.6)
        culprit = tmp_path / "big.png"
        row = _row(culprit)
    elif case == "garbage_image":
        img.write_bytes(b"not an image at all")
    elif case == "label_size":
        culprit = write_label(tmp_path / "gt.png", 10, 16)
        row = _row(img, gt_label_path=culprit)
    elif case == "gbuffer_size":
        culprit = write_gbuffer(tmp_path / "g.npz", 12, 15)
        row = _row(img, gbuffer_path=culprit)
    elif case == "gbuffer_key":
        culprit = write_gbuffer(tmp_path / "g.npz", 12, 16, key="arr")
        row = _row(img, gbuffer_path=culprit)
    elif case == "gbuffer_corrupt":
        culprit = truncate(write_gbuffer(tmp_path / "g.npz", 12, 16), 0.3)
        row = _row(img, gbuffer_path=culprit)
    elif case == "gbuffer_missing":
        culprit = tmp_path / "nope.npz"
        row = _row(img, gbuffer_path=culprit)
    elif case == "label_missing":
        culprit = tmp_path / "nope.png"
        row = _row(img, robust_label_path=culprit)
    elif case == "listed":
        row["problem"] = f"no GT label file for frame {img}"
    with pytest.raises(EpeflowError, match=str(culprit)):
        check_frame(row, "data", [])


def test_modality_images_must_match_the_frame(tmp_path):
    img = write_rgb(tmp_path / "img.png", 12, 16)
    row = {**_row(img), "mod_virtual": str(write_rgb(tmp_path / "v.png", 12, 10)), "mod_flow": str(tmp_path / "f.npy")}
    with pytest.raises(EpeflowError, match="virtual file .*v.png is 10x12"):
        check_frame(row, "data", ["mod_virtual", "mod_flow"])
    assert image_header_size(img, "x") == (12, 16)


def test_parallel_checks_keep_order_and_report_reasons(tmp_path):
    rows = [_row(write_rgb(tmp_path / f"{i}.png", 8 + i, 9)) for i in range(6)]
    rows[3] = _row(tmp_path / "missing.png")
    out = list(check_frames(rows, "data", [], threads=3))
    assert [o.height for o in out if isinstance(o, FrameInfo)] == [8, 9, 10, 12, 13]
    assert isinstance(out[3], str) and "missing.png" in out[3]
