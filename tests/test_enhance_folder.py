"""Using a trained model outside the pipeline: torch.hub, `epeflow enhance --images`, `epeflow profile`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_fixtures import TINY_TRAIN, one_torch_thread

from epeflow import load_model
from epeflow.artifacts.gbuffers import normalize_gbuffers
from epeflow.artifacts.model import write_model
from epeflow.cli import main
from epeflow.common.runtime import Runtime
from epeflow.common.taxonomy import materials_from_cityscapes
from epeflow.enhance import enhance_frame
from epeflow.io import read_image, write_png
from epeflow.models.ienet import IENet, IENetConfig
from epeflow.provenance import stamp
from epeflow.train.settings import TrainSettings

NAMES = ["depth", "normal_x", "normal_y"]
MEAN, STD = [0.5, 0.0, 0.1], [0.2, 1.0, 0.5]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def write_tiny_model(path, image_only=False, gbuffers=None):
    torch.manual_seed(0)
    mode = "img" if image_only else "all"
    config = IENetConfig(gbuffer_mode=mode, gbuffer_channels=0 if image_only else 3, class_slices=(), num_stages=2,
                         num_gbuffer_layers=1, width=0.125)
    generator = IENet(config)
    with torch.no_grad():
        generator.network.up_layers[-1][-1].weight.mul_(30)  # a visible change, so outputs can be told apart
    if gbuffers is None:
        gbuffers = ({"channels": 0, "names": [], "mean": [], "std": [], "mode": "img"} if image_only else
                    {"channels": 3, "names": NAMES, "mean": MEAN, "std": STD, "mode": "real"})
    train = TrainSettings.from_spec(dict(TINY_TRAIN)).to_dict()
    write_model(path, generator.state_dict(), config.to_dict(), gbuffers, train, stamp(True), {})
    return path


@pytest.fixture
def frames(tmp_path):
    """Two frames in nested folders with G-buffers (.npz with names, .npy in the model's order) and labels."""
    rng = np.random.default_rng(0)
    images, gbuffers, labels = tmp_path / "images", tmp_path / "gbuffers", tmp_path / "labels"
    data = {}
    for rel, size, kind in (("a/f0", (20, 28), "npz"), ("b/f1", (17, 30), "npy")):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        g = rng.random((*size, 4)).astype(np.float32)  # one channel more than the model reads, named ...
        label = rng.choice(np.array([7, 21, 23, 26], np.uint8), size)
        for folder in (images, gbuffers, labels):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        write_png(images / f"{rel}.png", image)
        write_png(labels / f"{rel}.png", label)
        order = ["albedo", "normal_y", "depth", "normal_x"]
        if kind == "npz":
            np.savez(gbuffers / f"{rel}.npz", data=g, names=np.array(order))
            picked = g[:, :, [order.index(n) for n in NAMES]]
        else:  # ... or exactly the model's channels, unnamed
            picked = g[:, :, :3]
            np.save(gbuffers / f"{rel}.npy", picked)
        data[rel] = (image, picked.transpose(2, 0, 1), label)
    return images, gbuffers, labels, data


def test_torch_hub_loads_a_ready_generator(tmp_path, repo):
    model = write_tiny_model(tmp_path / "model.pt")
    generator = torch.hub.load(str(repo), "epe", path=str(model), source="local", trust_repo=True)
    assert isinstance(generator, IENet) and not generator.training
    expected = load_model(model)
    for key, value in expected.state_dict().items():
        assert torch.equal(generator.state_dict()[key], value)
    image = torch.rand(1, 3, 12, 16)
    materials = torch.zeros(1, 12, 12, 16)
    materials[:, 2] = 1
    with torch.no_grad():
        out = generator(image, torch.zeros(1, 3, 12, 16), materials)
    assert out.shape == (1, 3, 12, 16) and out.min() >= 0 and out.max() <= 1


def test_folder_enhance_end_to_end(tmp_path, frames, capsys):
    images, gbuffers, labels, data = frames
    model = write_tiny_model(tmp_path / "model.pt")
    out = tmp_path / "out"
    rc = main(["enhance", "--model", str(model), "--images", str(images), "--gbuffers", str(gbuffers),
               "--labels", str(labels), "--out", str(out), "--device", "cpu"])
    assert rc == 0 and "wrote 2 enhanced frames" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a__f0.png", "b__f1.png"]
    generator = load_model(model)
    runtime = Runtime.detect(False, "cpu")
    for rel, (image, g, label) in data.items():
        normalised = normalize_gbuffers(g, np.array(MEAN, np.float32), np.array(STD, np.float32))
        expected = enhance_frame(generator, image, normalised, materials_from_cityscapes(label), runtime)
        written = read_image(out / f"{rel.replace('/', '__')}.png")
        assert written.shape == image.shape
        assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1  # rounding of batched float sums
        assert np.abs(written.astype(int) - image.astype(int)).mean() > 2  # the model did change the frame

    # 16-bit output and one material everywhere instead of label maps
    rc = main(["enhance", "--model", str(model), "--images", str(images), "--gbuffers", str(gbuffers),
               "--material", "road", "--out", str(tmp_path / "out16"), "--png-bits", "16"])
    assert rc == 0
    with open(tmp_path / "out16" / "a__f0.png", "rb") as f:
        assert f.read(26)[24] == 16  # IHDR bit depth


def test_image_only_models_need_no_gbuffers(tmp_path, frames):
    images = frames[0]
    model = write_tiny_model(tmp_path / "img.pt", image_only=True)
    assert main(["enhance", "--model", str(model), "--images", str(images), "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").glob("*.png"))) == 2


def test_folder_mode_errors_name_what_to_do(tmp_path, frames, capsys):
    images, gbuffers, labels, _ = frames
    model = write_tiny_model(tmp_path / "model.pt")
    base = ["enhance", "--model", str(model), "--images", str(images), "--out", str(tmp_path / "o")]

    def error(argv):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return err

    assert "--gbuffers DIR" in error(base + ["--labels", str(labels)])
    assert "--labels DIR" in error(base + ["--gbuffers", str(gbuffers)])
    (gbuffers / "b" / "f1.npy").unlink()
    assert "no G-buffer file for frame b/f1.png" in error(base + ["--gbuffers", str(gbuffers), "--labels", str(labels)])
    assert "not a mix" in error(["enhance", str(model), "m.parquet", "g.zarr", "out", "--images", str(images)])
    bare = write_tiny_model(tmp_path / "bare.pt", gbuffers={"channels": 3})
    err = error(["enhance", "--model", str(bare), "--images", str(images), "--gbuffers", str(gbuffers),
                 "--material", "road", "--out", str(tmp_path / "o")])
    assert "bare.pt has no usable G-buffer metadata" in err


def test_help_explains_both_modes(capsys):
    with pytest.raises(SystemExit):
        main(["enhance", "--help"])
    text = capsys.readouterr().out
    for words in ("MODEL MANIFEST GBUFFERS OUT_DIR", "--images", "<rel>.npz", "Cityscapes ids", "--material"):
        assert words in text
    with pytest.raises(SystemExit):
        main(["profile", "--help"])
    assert "max_memory_allocated" in capsys.readouterr().out


def test_profile_prints_a_table(tmp_path, capsys):
    model = write_tiny_model(tmp_path / "model.pt")
    assert main(["profile", str(model), "--size", "32x48", "--repeats", "1", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("32x48 frames, batch 1, cpu (float32)")
    rows = {line.split("  ")[0]: line.split() for line in lines if line.startswith(("generator", "VGG16", "discr"))}
    generator = next(v for k, v in rows.items() if k.startswith("generator (IENet all, 2 stages"))
    params = sum(p.numel() for p in load_model(model).parameters())
    assert f"{params / 1e6:.2f}" in generator and float(generator[-1]) > 0  # frames/s
    assert float(generator[-4].replace(",", "")) > 0  # GFLOP per frame
    assert any(k.startswith("discriminator (ppde)") for k in rows) and any(k.startswith("VGG16") for k in rows)
    text = "\n".join(lines)
    assert "peak memory: growth of the process's" in text and "not stored in model.pt" in text
    assert main(["profile", str(model), "--size", "big"]) == 2
