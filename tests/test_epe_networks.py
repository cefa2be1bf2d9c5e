"""Trained networks to and from the reference's files, through the `epeflow epe` commands."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import TINY_TRAIN, make_experiment, one_torch_thread

from epeflow import load_model
from epeflow.artifacts.checkpoints import list_checkpoints
from epeflow.artifacts.gbuffers import GBufferStore
from epeflow.artifacts.model import read_model
from epeflow.cli import main
from epeflow.epe.discriminator_checkpoint import import_discriminator
from epeflow.epe.generator_checkpoint import export_generator, read_state_dict
from epeflow.epe.networks import import_generator_model
from epeflow.errors import EpeflowError
from epeflow.models.ienet import IENet, IENetConfig
from epeflow.train import run_train


@pytest.fixture(autouse=True, scope="module")
def _threads():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return make_experiment(tmp_path_factory.mktemp("exp"))


def _reference_file(tmp_path, config: IENetConfig):
    torch.manual_seed(3)
    generator = IENet(config).eval()
    path = tmp_path / "run_gen-network.pth.tar"
    export_generator(generator, path, allow_nonreference=True)  # small widths: the reference could not build it
    return generator, path


def test_img_generator_round_trips_through_the_cli(tmp_path):
    generator, ref = _reference_file(tmp_path, IENetConfig(gbuffer_mode="img", num_stages=3, width=0.125))
    model = tmp_path / "model.pt"
    assert main(["epe", "import", "generator", str(ref), "--out", str(model)]) == 0
    assert read_model(model)["gbuffers"]["mode"] == "img"
    image = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert torch.allclose(load_model(model)(image), generator(image), atol=1e-6)
    back = tmp_path / "back_gen-network.pth.tar"
    assert main(["epe", "export", "generator", str(model), str(back)]) == 2  # width 0.125: refused ...
    assert main(["epe", "export", "generator", str(model), str(back), "--allow-nonreference"]) == 0  # ... unless asked
    original, exported = read_state_dict(ref), read_state_dict(back)
    assert original.keys() == exported.keys() and all(torch.equal(original[k], exported[k]) for k in original)


def test_gbuffer_generator_takes_the_store_it_will_enhance(tmp_path, exp):
    store = GBufferStore(exp.gbuffers)
    config = IENetConfig(gbuffer_mode="all", gbuffer_channels=store.channels, class_slices=(), num_stages=3,
                         width=0.125)
    generator, ref = _reference_file(tmp_path, config)
    with pytest.raises(EpeflowError, match="pass --gbuffers"):
        import_generator_model(ref, tmp_path / "model.pt", None, "all", class_slices=())
    import_generator_model(ref, tmp_path / "model.pt", exp.gbuffers, "all", class_slices=())
    model = read_model(tmp_path / "model.pt")
    assert model["gbuffers"] == store.describe() and model["provenance"]["imported_from"] == str(ref)
    image, g, m = torch.rand(1, 3, 16, 24), torch.randn(1, store.channels, 16, 24), torch.zeros(1, 12, 16, 24)
    m[:, 3] = 1
    with torch.no_grad():
        assert torch.allclose(load_model(tmp_path / "model.pt")(image, g, m), generator(image, g, m), atol=1e-6)


def test_discriminator_of_a_checkpoint_exports_to_the_reference_layout(tmp_path, exp, hub_dir):
    root = tmp_path / "run"
    run_train(**exp.train_args(root / "model.pt", root / "checkpoints"), spec={**TINY_TRAIN, "iterations": 2},
              weights={}, allow_random=True)
    _, last = list_checkpoints(root / "checkpoints")[-1]
    out = tmp_path / "run_disc-network.pth.tar"
    assert main(["epe", "export", "discriminator", str(last), str(out)]) == 2  # width 0.125: refused
    assert main(["epe", "export", "discriminator", str(last), str(out), "--allow-nonreference"]) == 0
    disc, _ = import_discriminator(out)
    saved = torch.load(last, weights_only=True)["discriminator"]
    assert disc.state_dict().keys() == saved.keys()
    assert all(torch.equal(disc.state_dict()[k], saved[k]) for k in saved)
