"""Inception-v3 pool3 features, FID and KID as torch-fidelity computes them.

The parity tests load torch-fidelity 0.4.0 from `$EPEFLOW_TORCH_FIDELITY_SITE` (default /tmp/tfid_site; see
tests/torch_fidelity_site.py for the one-line install) and are skipped, saying so, where it is not importable.
No test needs the real weight file: both implementations load the same random-weight state dict.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity_site import KID_KWARGS, load_torch_fidelity

from epeflow.metrics.inception import (
    InceptionWeightsMissing,
    inception_from_state,
    load_inception,
    network_input,
    pool3,
    resize_bilinear_tf1,
)
from epeflow.metrics.inception_net import InceptionV3Pool3
from epeflow.metrics.kid import fid, kid


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random Inception weights under the FID files' names, scaled so activations neither vanish nor explode."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in InceptionV3Pool3().state_dict().items():
        if name.endswith("conv.weight"):
            fan_in = t[0].numel()
            state[name] = torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif name.endswith("bn.weight") or name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(t.shape, generator=g)
        elif name.endswith("num_batches_tracked"):
            state[name] = t
        else:  # bn.bias, running_mean, fc
            state[name] = 0.1 * torch.randn(t.shape, generator=g)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(random_state(), path)
    return str(path)


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    """Two small uint8 batches of different sizes and aspect ratios (one smaller, one larger than 299)."""
    rng = np.random.default_rng(3)
    a = torch.from_numpy(rng.integers(0, 256, (4, 3, 40, 72), dtype=np.uint8))
    b = torch.from_numpy(rng.integers(0, 256, (4, 3, 331, 307), dtype=np.uint8))
    return a, b


@pytest.fixture(scope="module")
def ours(weights_file, images) -> tuple[torch.Tensor, torch.Tensor]:
    """Our pool3 features of both batches (a forward pass costs about a second here: computed once)."""
    model, _ = load_inception({"path": weights_file})
    return pool3(model, images[0]), pool3(model, images[1])


# FID on the first 256 of the 2048 features: the formula is the same, and a 2048x2048 matrix square root
# takes a minute on this 2-core machine (bench/bench_evaluate.py compares all 2048 on 1,000 frames).
FID_DIMS = 256


def test_tf1_resize_samples_at_i_times_scale_without_half_pixel_offset():
    x = torch.tensor([[0.0, 10.0, 20.0]])[None, None]  # (1, 1, 1, 3)
    out = resize_bilinear_tf1(x, (1, 6))  # positions 0, .5, 1, 1.5, 2, 2.5 (the last two clamp to pixel 2)
    np.testing.assert_allclose(out[0, 0, 0].numpy(), [0, 5, 10, 15, 20, 20])
    down = resize_bilinear_tf1(torch.arange(16.0).reshape(1, 1, 4, 4), (2, 2))  # positions 0 and 2: no averaging
    np.testing.assert_array_equal(down[0, 0].numpy(), [[0, 2], [8, 10]])


def test_network_input_is_299_float32_in_minus_one_one():
    x = network_input(torch.tensor([0, 128, 255], dtype=torch.uint8).repeat(1, 3, 1, 1).reshape(1, 3, 1, 3))
    assert x.shape == (1, 3, 299, 299) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == pytest.approx(127 / 128)
    with pytest.raises(ValueError, match="uint8"):
        network_input(torch.zeros(1, 3, 8, 8))


def test_missing_weights_name_the_path_and_the_key(tmp_path):
    with pytest.raises(InceptionWeightsMissing, match="weights.inception.path") as e:
        load_inception({"path": str(tmp_path / "absent.pth")})
    assert str(tmp_path / "absent.pth") in str(e.value)


def test_a_foreign_state_dict_is_refused():
    with pytest.raises(Exception, match="not the FID Inception-v3"):
        inception_from_state({"conv.weight": torch.zeros(1)})


def test_loaded_weights_are_recorded_with_their_hash(weights_file):
    model, record = load_inception({"path": weights_file})
    assert record["file"] == weights_file and len(record["sha256"]) == 64
    assert not any(p.requires_grad for p in model.parameters())


def test_identical_frames_give_zero_fid_and_a_shift_gives_more(weights_file, images, ours):
    model, _ = load_inception({"path": weights_file})
    a = ours[0].double().numpy()
    assert a.shape == (4, 2048) and np.isfinite(a).all()
    brighter = pool3(model, (images[0].int() + 60).clamp(0, 255).to(torch.uint8)).double().numpy()
    a, brighter = a[:, :FID_DIMS], brighter[:, :FID_DIMS]
    same = fid(a, a).value
    assert abs(same) < 1e-6 * np.trace(np.cov(a, rowvar=False))
    assert fid(a, brighter).value > 100 * max(abs(same), 1e-12)
    assert kid(a, brighter, 5, 3).mean > abs(kid(a, a, 5, 3).mean)


# ---------------------------------------------------------------- side by side with torch-fidelity


@pytest.fixture(scope="module")
def torch_fidelity():
    module = load_torch_fidelity()
    if isinstance(module, str):
        pytest.skip(module)
    return module


def test_state_dict_names_and_shapes_are_torch_fidelitys(torch_fidelity, weights_file):
    theirs = torch_fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                        feature_extractor_weights_path=weights_file)
    assert {k: v.shape for k, v in theirs.state_dict().items()} == \
        {k: v.shape for k, v in InceptionV3Pool3().state_dict().items()}


def test_features_fid_and_kid_equal_torch_fidelitys(torch_fidelity, weights_file, images, ours):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    theirs = torch_fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                        feature_extractor_weights_path=weights_file)
    ta, tb = (theirs(batch)[0] for batch in images)
    for o, t in ((ours[0], ta), (ours[1], tb)):
        assert o.dtype == t.dtype == torch.float32 and o.shape == t.shape == (4, 2048)
        scale = t.abs().max().item()
        assert scale > 1e-3  # the random network does not collapse the features
        assert (o - t).abs().max().item() <= 1e-5 * scale

    oa, ob = ours
    settings = {**KID_KWARGS, "kid_subsets": 10, "kid_subset_size": 3}
    t_kid = kid_features_to_metric(ta, tb, **settings)
    o_kid = kid(oa.numpy(), ob.numpy(), 10, 3, dtype=np.float32)
    assert o_kid.mean == pytest.approx(t_kid["kernel_inception_distance_mean"], rel=1e-6)
    assert o_kid.std == pytest.approx(t_kid["kernel_inception_distance_std"], rel=1e-6)
    same = kid(ta.numpy(), tb.numpy(), 10, 3, dtype=np.float32)  # on their features: their number to the bit
    assert (same.mean, same.std) == (t_kid["kernel_inception_distance_mean"], t_kid["kernel_inception_distance_std"])

    ta, tb, oa, ob = (f[:, :FID_DIMS].contiguous() for f in (ta, tb, oa, ob))
    t_fid = fid_statistics_to_metric(fid_features_to_statistics(ta), fid_features_to_statistics(tb), False)
    assert fid(oa.numpy(), ob.numpy()).value == pytest.approx(t_fid["frechet_inception_distance"], rel=1e-6)


def test_kid_refuses_too_few_samples_as_torch_fidelity_does(torch_fidelity):
    from torch_fidelity.metric_kid import kid_features_to_metric

    x = np.random.default_rng(0).random((6, 16), dtype=np.float32)
    with pytest.raises(Exception, match="KID subset size 8"):
        kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(x), **{**KID_KWARGS, "kid_subset_size": 8})
    with pytest.raises(Exception, match="needs at least 8 feature vectors in each set, got 6 and 6"):
        kid(x, x, 10, 8)


def test_the_hub_cache_serves_either_official_name(hub_dir):
    with pytest.raises(InceptionWeightsMissing, match="pt_inception-2015-12-05-6726825d.pth"):
        load_inception(None)
    torch.save(random_state(1), hub_dir / "weights-inception-2015-12-05-6726825d.pth")  # torch-fidelity's download
    _, record = load_inception(None)
    assert record["file"] == str(hub_dir / "weights-inception-2015-12-05-6726825d.pth")
