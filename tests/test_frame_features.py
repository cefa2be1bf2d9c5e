from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_fixtures import scene

from epeflow.common.vgg16 import build_vgg16
from epeflow.io import write_png
from epeflow.metrics.frame_features import EMBEDDING_DIM, embed_frames, frame_embedding
from epeflow.metrics.frames import load_rgb, resize_short_side


@pytest.fixture(scope="module")
def vgg():
    model, _ = build_vgg16({}, allow_random=True)  # the hub cache is empty in tests: random weights
    return model


def test_embeddings_match_one_frame_at_a_time_in_order(tmp_path, vgg):
    sizes = [(48, 64), (48, 64), (40, 72), (48, 64), (48, 64), (48, 64)]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"f{i}.png")
        write_png(paths[-1], scene(i, "real", size))
    out = embed_frames(vgg, paths, short_side=512, threads=2, batch_size=2)
    assert out.shape == (len(paths), EMBEDDING_DIM) and out.dtype == np.float32
    for i, path in enumerate(paths):
        single = frame_embedding(vgg, load_rgb(path)[None]).numpy()[0]
        np.testing.assert_allclose(out[i], single, rtol=1e-4, atol=1e-5)
    assert not np.allclose(out[0], out[1])  # different scenes, different features


def test_large_frames_are_downscaled_to_the_short_side(tmp_path, vgg):
    path = tmp_path / "big.png"
    write_png(path, scene(3, "synthetic", (96, 128)))
    out = embed_frames(vgg, [path], short_side=48)
    expected = frame_embedding(vgg, resize_short_side(load_rgb(path), 48)[None]).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(out, frame_embedding(vgg, load_rgb(path)[None]).numpy(), rtol=1e-3)


def test_embedding_is_the_spatial_mean_of_relu5_3(vgg):
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        relu = vgg(x, ("relu5_3",))["relu5_3"]
    torch.testing.assert_close(frame_embedding(vgg, x), relu.mean(dim=(2, 3)))
