"""Dataset fingerprints: what the manifest rule compares to see data changes, and the per-frame content
digest the manifest records."""

from __future__ import annotations

import os

from dataset_fixtures import DEMO_SPEC, write_gbuffer, write_label, write_rgb

from epeflow.datasets.fingerprint import frame_digest, listing_fingerprint
from epeflow.datasets.manifest import build_manifest


def _folder(root, n=4):
    for i in range(n):
        write_rgb(root / "img" / f"f{i}.png", seed=i)
        write_label(root / "gt" / f"f{i}.png")
        write_gbuffer(root / "gb" / f"f{i}.npz")
    return {"role": "synthetic", "images": str(root / "img"), "gt_label_dir": str(root / "gt"),
            "gbuffer_dir": str(root / "gb")}


def _later(path, seconds=10):
    """Move a file's modification time forward, as an edit would."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def test_an_untouched_dataset_keeps_its_fingerprint(tmp_path):
    spec = _folder(tmp_path)
    first = listing_fingerprint(spec, "ds")
    assert first.startswith("4 frames ") and listing_fingerprint(spec, "ds") == first


def test_adding_removing_editing_or_touching_any_file_changes_it(tmp_path):
    spec = _folder(tmp_path)
    seen = {listing_fingerprint(spec, "ds")}

    def changed() -> bool:
        fp = listing_fingerprint(spec, "ds")
        new = fp not in seen
        seen.add(fp)
        return new

    write_rgb(tmp_path / "img" / "f0.png", seed=9)  # replaced, same size
    assert changed()
    _later(tmp_path / "gt" / "f1.png")
    assert changed()
    _later(tmp_path / "gb" / "f2.npz")
    assert changed()
    write_rgb(tmp_path / "img" / "f4.png", seed=4)
    write_label(tmp_path / "gt" / "f4.png")
    write_gbuffer(tmp_path / "gb" / "f4.npz")
    assert changed() and listing_fingerprint(spec, "ds").startswith("5 frames ")
    (tmp_path / "img" / "f3.png").unlink()
    assert changed()
    (tmp_path / "img" / "notes.txt").write_text("not a frame")  # not an image the dataset would read
    assert not changed()


def test_moving_a_dataset_keeps_its_fingerprint(tmp_path):
    """Paths are relative to the dataset's folder: the same files elsewhere (mtimes kept) are no change,
    the config's new path is (that is the manifest's settings)."""
    spec = _folder(tmp_path / "a")
    first = listing_fingerprint(spec, "ds")
    os.rename(tmp_path / "a", tmp_path / "b")
    moved = {k: v.replace(str(tmp_path / "a"), str(tmp_path / "b")) if isinstance(v, str) else v
             for k, v in spec.items()}
    assert listing_fingerprint(moved, "ds") == first


def test_a_file_list_fingerprints_the_files_it_names_in_order(tmp_path):
    for i in range(3):
        write_rgb(tmp_path / f"f{i}.png", seed=i)
    lines = [f"f{i}.png" for i in range(3)]
    listed = tmp_path / "files.txt"
    listed.write_text("\n".join(lines) + "\n")
    spec = {"role": "real", "filelist": str(listed), "labels": "mseg"}
    first = listing_fingerprint(spec, "ds")
    listed.write_text("# a comment\n" + "\n".join(lines) + "\n")
    assert listing_fingerprint(spec, "ds") == first
    listed.write_text("\n".join(reversed(lines)) + "\n")
    assert listing_fingerprint(spec, "ds") != first


def test_max_frames_limits_what_is_fingerprinted(tmp_path):
    spec = {**_folder(tmp_path), "max_frames": 2}
    first = listing_fingerprint(spec, "ds")
    write_rgb(tmp_path / "img" / "f3.png", seed=7)
    assert listing_fingerprint(spec, "ds") == first


def test_unlistable_datasets_and_demos(tmp_path):
    assert listing_fingerprint({"role": "real", "images": str(tmp_path / "nowhere")}, "ds").startswith(
        "cannot be listed: ")
    assert listing_fingerprint({"role": "real", **DEMO_SPEC}, "demo") == ""


def test_frame_digest_is_the_image_content_and_the_companions_stats(tmp_path):
    spec = _folder(tmp_path, n=1)
    row = build_manifest("ds", spec).frames.iloc[0].to_dict()
    digest = row["digest"]
    assert frame_digest(row) == digest
    _later(tmp_path / "img" / "f0.png")  # same bytes: same content
    assert frame_digest(row) == digest
    _later(tmp_path / "gt" / "f0.png")  # a companion touched: read again by the stage using it
    assert frame_digest(row) != digest
    write_rgb(tmp_path / "img" / "f0.png", seed=3)
    assert len({frame_digest(row), digest}) == 2


def test_planned_frames_for_the_shard_count():
    from epeflow.datasets.fingerprint import planned_frames

    assert planned_frames({"images": "x"}, "25000 frames 0123abcd") == 25000
    assert planned_frames({"images": "x"}, "cannot be listed: no folder") == 1
    assert planned_frames({"demo": {"frames": 48}, "max_frames": 12}, "") == 12
    assert planned_frames({"demo": {"frames": 48}, "max_frames": None}, "") == 48
