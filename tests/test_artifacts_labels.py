"""The resumable label writer shared by all methods."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from epeflow.artifacts.labels import STATE_FILE, per_frame, write_labels
from epeflow.errors import EpeflowError


def _frames(n=5, h=4, w=6) -> pd.DataFrame:
    return pd.DataFrame({"frame": range(n), "id": [f"f{i}" for i in range(n)],
                         "path": [f"/x/f{i}.png" for i in range(n)], "height": [h] * n, "width": [w] * n})


def _constant(row) -> np.ndarray:
    return np.full((row["height"], row["width"]), row["frame"], np.uint8)


class Killed(Exception):
    pass


def _dies_after(k):
    def method(frames):
        for i, row in enumerate(frames.to_dict("records")):
            if i == k:
                raise Killed
            yield _constant(row)
    return method


def _read(path):
    return np.asarray(Image.open(path))


def test_writes_every_frame_and_labels_json(tmp_path):
    info = write_labels(_frames(), tmp_path / "labels", per_frame(_constant, threads=3), "gt")
    out = tmp_path / "labels"
    assert sorted(p.name for p in out.iterdir()) == ["f0.png", "f1.png", "f2.png", "f3.png", "f4.png", "labels.json"]
    assert (_read(out / "f3.png") == 3).all()
    assert json.loads((out / "labels.json").read_text()) == info
    assert info["method"] == "gt" and info["num_frames"] == 5 and info["random_weights"] is False
    assert not (tmp_path / "labels.partial").exists()


def test_a_killed_run_resumes_without_redoing_finished_frames(tmp_path):
    with pytest.raises(Killed):
        write_labels(_frames(), tmp_path / "labels", _dies_after(3), "gt")
    partial = tmp_path / "labels.partial"
    assert sorted(p.name for p in partial.glob("*.png")) == ["f0.png", "f1.png", "f2.png"]
    assert not (tmp_path / "labels").exists()
    sentinel = np.full((4, 6), 77, np.uint8)  # a finished frame must be kept as it is, not recomputed
    Image.fromarray(sentinel).save(partial / "f1.png")
    (partial / ".f4.png.tmp-123-abc").write_bytes(b"half a file")  # left by a write that was killed
    seen = []

    def recording(frames):
        seen.extend(frames["id"])
        return per_frame(_constant)(frames)

    write_labels(_frames(), tmp_path / "labels", recording, "gt")
    assert seen == ["f3", "f4"]
    assert (_read(tmp_path / "labels" / "f1.png") == 77).all() and (_read(tmp_path / "labels" / "f4.png") == 4).all()
    assert not list((tmp_path / "labels").glob(".*")) and not (tmp_path / "labels" / STATE_FILE).exists()


def test_another_method_starts_over(tmp_path):
    with pytest.raises(Killed):
        write_labels(_frames(), tmp_path / "labels", _dies_after(2), "given")
    seen = []

    def recording(frames):
        seen.extend(frames["id"])
        return per_frame(_constant)(frames)

    write_labels(_frames(), tmp_path / "labels", recording, "gt")
    assert seen == ["f0", "f1", "f2", "f3", "f4"]


def test_a_resume_remakes_the_maps_of_changed_or_removed_frames(tmp_path):
    """Maps are kept per frame by its content digest: changed frames are made again, removed ones dropped,
    added ones made, so old maps never mix with new ones."""
    frames = _frames(4).assign(digest=["a", "b", "c", "d"])
    with pytest.raises(Killed):
        write_labels(frames, tmp_path / "labels", _dies_after(3), "gt")  # f0, f1, f2 written
    changed = frames.assign(digest=["a", "B", "c", "d"]).drop(index=2).reset_index(drop=True)
    changed = pd.concat([changed, _frames(5).iloc[[4]].assign(digest="e")], ignore_index=True)
    seen = []

    def recording(frames):
        seen.extend(frames["id"])
        return per_frame(lambda row: np.full((4, 6), 100 + int(row["id"][1:]), np.uint8))(frames)

    info = write_labels(changed, tmp_path / "labels", recording, "gt")
    assert seen == ["f1", "f3", "f4"]
    out = tmp_path / "labels"
    assert sorted(p.name for p in out.glob("*.png")) == ["f0.png", "f1.png", "f3.png", "f4.png"]
    assert (_read(out / "f0.png") == 0).all() and (_read(out / "f1.png") == 101).all()
    assert info["num_frames"] == 4


def test_labels_json_records_a_digest_of_the_maps(tmp_path):
    first = write_labels(_frames(), tmp_path / "a", per_frame(_constant), "gt")
    same = write_labels(_frames(), tmp_path / "b", per_frame(_constant), "gt")
    other = write_labels(_frames(), tmp_path / "c", per_frame(lambda row: _constant(row) + 1), "gt")
    assert first["content"] == same["content"] != other["content"]


def test_hand_placed_maps_without_a_record_are_adopted(tmp_path):
    partial = tmp_path / "labels.partial"
    partial.mkdir()
    Image.fromarray(np.full((4, 6), 9, np.uint8)).save(partial / "f0.png")
    write_labels(_frames(2), tmp_path / "labels", per_frame(_constant), "gt")
    assert (_read(tmp_path / "labels" / "f0.png") == 9).all() and (_read(tmp_path / "labels" / "f1.png") == 1).all()


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 6), np.uint8), "is 6x3 but its image /x/f0.png is 6x4"),
    (np.zeros((4, 6), np.int32), "dtype int32"),
    (np.full((4, 6), 194, np.uint8), r"ids \[194\]"),
])
def test_bad_maps_from_a_method_are_errors(tmp_path, bad, message):
    with pytest.raises(EpeflowError, match=message):
        write_labels(_frames(1), tmp_path / "labels", lambda frames: [bad], "gt")


def test_per_frame_keeps_order_with_threads():
    frames = _frames(23)
    maps = list(per_frame(_constant, threads=4)(frames))
    assert [int(m[0, 0]) for m in maps] == list(range(23))


def test_other_method_settings_start_over_and_are_recorded(tmp_path):
    with pytest.raises(Killed):
        write_labels(_frames(), tmp_path / "labels", _dies_after(2), "mseg", settings={"scales": (1.0,), "crop": 9})
    seen = []

    def recording(frames):
        seen.extend(frames["id"])
        return per_frame(_constant)(frames)

    info = write_labels(_frames(), tmp_path / "labels", recording, "mseg", settings={"scales": [1.0], "crop": 9})
    assert seen == ["f2", "f3", "f4"]  # same settings (a tuple reads back as a list): resumed
    assert info["settings"] == {"scales": [1.0], "crop": 9}
    assert json.loads((tmp_path / "labels" / "labels.json").read_text())["settings"] == info["settings"]
    with pytest.raises(Killed):
        write_labels(_frames(), tmp_path / "again", _dies_after(2), "mseg", settings={"scales": [1.0], "crop": 9})
    seen.clear()
    write_labels(_frames(), tmp_path / "again", recording, "mseg", settings={"scales": [0.5, 1.0], "crop": 9})
    assert seen == ["f0", "f1", "f2", "f3", "f4"]
