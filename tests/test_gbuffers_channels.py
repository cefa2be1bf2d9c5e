import numpy as np
import pytest

from epeflow.errors import EpeflowError
from epeflow.gbuffers.channels import default_names, select_channels

NAMES = ["albedo_r", "albedo_g", "Depth", "normal.X", "normal.Y", "shadow", "emission", "sky_r", "roughness"]


def test_all_keeps_every_channel_even_without_names():
    assert select_channels(default_names(4), "all", named=False).tolist() == [0, 1, 2, 3]


def test_geometry_keeps_depth_and_normals_case_insensitive():
    assert [NAMES[i] for i in select_channels(NAMES, "geometry")] == ["Depth", "normal.X", "normal.Y"]


def test_no_light_drops_light_dependent_channels():
    kept = [NAMES[i] for i in select_channels(NAMES, "no_light")]
    assert kept == ["albedo_r", "albedo_g", "Depth", "normal.X", "normal.Y", "roughness"]


def test_groups_other_than_all_need_names():
    with pytest.raises(EpeflowError, match="gbuffer_names"):
        select_channels(default_names(3), "geometry", named=False)


def test_empty_group_is_an_error_listing_the_names():
    with pytest.raises(EpeflowError, match="albedo_r"):
        select_channels(["albedo_r", "albedo_g"], "geometry")


def test_unknown_group():
    with pytest.raises(EpeflowError, match="gbuffer_channels"):
        select_channels(NAMES, "lights")


def test_indices_are_int64_in_file_order():
    index = select_channels(NAMES, "no_light")
    assert index.dtype == np.int64 and np.all(np.diff(index) > 0)


def test_demo_dataset_layout_groups():
    demo = ["depth", "normal_x", "normal_y", "normal_z", "albedo_r", "albedo_g", "albedo_b", "shading", "sky_light"]
    assert select_channels(demo, "no_light").tolist() == list(range(7))
    assert select_channels(demo, "geometry").tolist() == list(range(4))
