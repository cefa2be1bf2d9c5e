import numpy as np
import pytest
from PIL import Image

from epeflow.errors import EpeflowError
from epeflow.gbuffers.files import read_gbuffer_file


def test_npz_round_trip_with_names(tmp_path):
    data = np.random.default_rng(0).standard_normal((5, 7, 3)).astype(np.float16)
    np.savez_compressed(tmp_path / "g.npz", gbuffers=data, names=np.array(["depth", "normal_x", "normal_y"]))
    array, names = read_gbuffer_file(tmp_path / "g.npz", "gbuffers")
    assert array.dtype == np.float32 and array.shape == (5, 7, 3)
    np.testing.assert_array_equal(array, data.astype(np.float32))
    assert names == ["depth", "normal_x", "normal_y"]


def test_npz_single_channel_and_no_names(tmp_path):
    np.savez(tmp_path / "g.npz", data=np.ones((4, 6)))
    array, names = read_gbuffer_file(tmp_path / "g.npz")
    assert array.shape == (4, 6, 1) and names is None


def test_npz_missing_key_lists_the_keys(tmp_path):
    np.savez(tmp_path / "g.npz", img=np.ones((2, 2, 3)))
    with pytest.raises(EpeflowError, match=r"g\.npz.*has no array 'data'.*img.*gbuffer_key"):
        read_gbuffer_file(tmp_path / "g.npz")


def test_npz_names_must_match_channels(tmp_path):
    np.savez(tmp_path / "g.npz", data=np.ones((2, 2, 3)), names=np.array(["a", "b"]))
    with pytest.raises(EpeflowError, match="names 2 channels but holds 3"):
        read_gbuffer_file(tmp_path / "g.npz")


def test_corrupt_npz_names_the_file(tmp_path):
    (tmp_path / "g.npz").write_bytes(b"not a zip")
    with pytest.raises(EpeflowError, match=r"g\.npz cannot be read"):
        read_gbuffer_file(tmp_path / "g.npz")


def test_png_8_and_16_bit_are_scaled_to_unit_range(tmp_path):
    rgb = np.array([[[0, 255, 51]]], dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    depth = np.array([[0, 65535, 13107]], dtype=np.uint16)
    Image.fromarray(depth).save(tmp_path / "d.png")
    np.testing.assert_allclose(read_gbuffer_file(tmp_path / "c.png")[0][0, 0], [0, 1, 0.2], atol=1e-6)
    np.testing.assert_allclose(read_gbuffer_file(tmp_path / "d.png")[0][0, :, 0], [0, 1, 0.2], atol=1e-6)


def test_folder_of_pngs_names_channels_after_files(tmp_path):
    folder = tmp_path / "frame0"
    folder.mkdir()
    Image.fromarray(np.zeros((3, 4), np.uint8)).save(folder / "depth.png")
    Image.fromarray(np.full((3, 4, 3), 255, np.uint8)).save(folder / "normal.png")
    array, names = read_gbuffer_file(folder)
    assert names == ["depth", "normal_r", "normal_g", "normal_b"]
    assert array.shape == (3, 4, 4) and array[..., 0].max() == 0 and array[..., 1:].min() == 1


def test_folder_with_mismatched_sizes_is_an_error(tmp_path):
    folder = tmp_path / "frame0"
    folder.mkdir()
    Image.fromarray(np.zeros((3, 4), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((3, 5), np.uint8)).save(folder / "b.png")
    with pytest.raises(EpeflowError, match=r"b\.png is 3x5"):
        read_gbuffer_file(folder)


def test_exr_channels_keep_their_names(tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")
    depth = np.random.default_rng(1).random((4, 5)).astype(np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"depth": depth, "normal.X": np.ones((4, 5), np.float16)}) as f:
        f.write(str(tmp_path / "g.exr"))
    array, names = read_gbuffer_file(tmp_path / "g.exr")
    assert names == ["depth", "normal.X"]
    np.testing.assert_array_equal(array[..., 0], depth)
    np.testing.assert_array_equal(array[..., 1], 1.0)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(EpeflowError, match=r"nothere\.npz does not exist"):
        read_gbuffer_file(tmp_path / "nothere.npz")
    (tmp_path / "g.txt").write_text("x")
    with pytest.raises(EpeflowError, match="unsupported type '.txt'"):
        read_gbuffer_file(tmp_path / "g.txt")
