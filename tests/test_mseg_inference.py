import numpy as np
import pytest
import torch

from epeflow.errors import EpeflowError
from epeflow.labels.mseg.hrnet import HRNetConfig, empty_model, init_random
from epeflow.labels.mseg.inference import (
    MEAN_255,
    STD_255,
    MsegLabeler,
    MsegSettings,
    scale_probs,
    scaled_size,
    segment,
    window_starts,
)

TINY = MsegSettings(base_size=24, scales=(1.0,), crop=33, batch_size=3)
# The inference logic does not depend on the network's width: a narrow HRNetV2 keeps these tests fast.
NARROW = HRNetConfig(stage_channels=(8, 16, 24, 32), stage_modules=(1, 1, 1), blocks=1, stem_blocks=1)


class _Narrow:
    def __init__(self) -> None:
        self.model = empty_model(NARROW)
        init_random(self.model, 0)
        self.model.eval()

    def __call__(self, rgb):
        return segment(self.model, rgb, TINY)


@pytest.fixture(scope="module")
def labeler():
    return _Narrow()


def test_labeler_with_random_w48_weights(hub_dir):
    labeler = MsegLabeler(TINY, None, allow_random=True, device="cpu")
    assert labeler.random_weights and labeler.describe()["random_weights"]
    out = labeler(_frame(30, 50))
    assert out.shape == (30, 50) and out.dtype == np.uint8 and out.max() <= 193


def _frame(h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(base, np.ones((4, 4, 1), np.uint8))[:h, :w])  # blocky, like scenes


def test_window_grid_covers_everything_with_overlap():
    assert window_starts(713, 713, 476) == [0]
    assert window_starts(1000, 713, 476) == [0, 287]
    assert window_starts(1920, 713, 476) == [0, 476, 952, 1207]
    for length in (33, 50, 97):
        starts = window_starts(length, 33, 22)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s : s + 33] = True
        assert covered.all() and starts[-1] + 33 == length


def test_scaled_size_sets_the_short_side():
    assert scaled_size(1052, 1914, 1080) == (1080, 1965)
    assert scaled_size(1914, 1052, 720) == (1310, 720)


def test_output_shape_dtype_and_id_range(labeler):
    out = labeler(_frame(30, 50))
    assert out.shape == (30, 50) and out.dtype == np.uint8
    assert out.max() <= 193


def test_single_and_multi_scale_both_run(labeler):
    rgb = _frame(26, 45, seed=1)
    multi = MsegSettings(base_size=24, scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), crop=33, batch_size=4)
    single = segment(labeler.model, rgb, TINY)
    several = segment(labeler.model, rgb, multi)
    assert single.shape == several.shape == (26, 45) and several.max() <= 193


def test_one_window_equals_the_network_on_the_normalised_frame(labeler):
    rgb = _frame(33, 40, seed=2)  # short side 33 = base size, so no resize; one window per row of windows
    settings = MsegSettings(base_size=33, scales=(1.0,), crop=33, batch_size=2, flip=False)
    x = (torch.from_numpy(rgb).permute(2, 0, 1).float() - torch.tensor(MEAN_255).view(3, 1, 1)) / torch.tensor(
        STD_255
    ).view(3, 1, 1)
    with torch.no_grad():
        probs = labeler.model(x[None, :, :, :33]).softmax(1)[0]
    out = scale_probs(labeler.model, x, (33, 40), settings)
    # columns 0..6 are seen by the first window only
    torch.testing.assert_close(out[:, :, :7], probs[:, :, :7], rtol=1e-4, atol=1e-6)


def test_batching_does_not_change_probabilities(labeler):
    x = torch.randn(3, 36, 50)  # 2 x 2 overlapping windows
    a = scale_probs(labeler.model, x, (36, 50), MsegSettings(crop=33, batch_size=1, flip=False))
    b = scale_probs(labeler.model, x, (36, 50), MsegSettings(crop=33, batch_size=4, flip=False))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a.sum(0), torch.ones(36, 50), rtol=1e-5, atol=1e-5)


def test_flip_averaging_makes_labels_mirror_equivariant(labeler):
    rgb = _frame(24, 31, seed=3)  # one window, symmetric padding (33 - 31 = 2)
    out = labeler(rgb)
    np.testing.assert_array_equal(labeler(np.ascontiguousarray(rgb[:, ::-1])), out[:, ::-1])


def test_deterministic(labeler):
    rgb = _frame(28, 36, seed=4)
    np.testing.assert_array_equal(labeler(rgb), labeler(rgb))


def test_settings_from_the_dataset_entry():
    s = MsegSettings.from_spec({"base_size": 720, "scales": [0.5, 1.0], "crop": 513, "batch_size": 2})
    assert (s.base_size, s.scales, s.crop, s.batch_size, s.flip) == (720, (0.5, 1.0), 513, 2, True)
    assert MsegSettings.from_spec(None) == MsegSettings()
    labeler_spec = {"role": "real", "labels": "mseg", "mseg": {"base_size": 360, "scales": [1.0]}}
    assert MsegLabeler.settings_of(labeler_spec, "cs").base_size == 360
    with pytest.raises(EpeflowError, match="scales"):
        MsegSettings.from_spec({"scales": [0.0]})
