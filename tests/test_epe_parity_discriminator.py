"""Parity with the reference's ppde discriminator, imported at run time from $EPEFLOW_REFERENCE_CODE.

The reference discriminator is built, its random weights are loaded into ours, and both judge the same image
with the same random VGG16 weights (the reference's VGG16 wraps our torchvision-layout convs, as it would
wrap torchvision's). Skipped unless EPEFLOW_REFERENCE_CODE names a directory holding the reference's `code/`.

Also the source of tests/data/ppde_reference_keys.json (the reference's key names and shapes):
`EPEFLOW_REFERENCE_CODE=/tmp/epe_ref python tests/test_epe_parity_discriminator.py --record`.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn
from train_fixtures import one_torch_thread

from epeflow.common.vgg16 import VGG16
from epeflow.epe.discriminator_checkpoint import export_discriminator, import_discriminator
from epeflow.models.gan_losses import GAN_LOSSES
from epeflow.models.ppde import PPDE, PPDEConfig

KEYS_FILE = Path(__file__).parent / "data" / "ppde_reference_keys.json"
# train_pfd2cs.yaml's discriminator config, and a second one to exercise other layouts
RECORDED_CONFIGS = [
    {"norm": "group", "num_layers": 4, "max_dim": 256},
    {"norm": "none", "num_layers": 3, "max_dim": 128},
]


def reference_code_dir() -> Path | None:
    root = os.environ.get("EPEFLOW_REFERENCE_CODE")
    if not root:
        return None
    root_path = Path(root)
    return root_path / "code" if (root_path / "code" / "epe").is_dir() else root_path


@contextmanager
def reference_network(code: Path) -> Iterator[types.SimpleNamespace]:
    """The reference's `epe.network.discriminators` and `epe.network.vgg16`, without `epe/network/__init__`
    (which pulls in lpips and the generators); kornia and torchvision are stubbed where missing (the
    discriminator uses kornia only for `downsample`, and the VGG16 gets its convs from `random_vgg_convs`)."""
    names = ["epe", "epe.network", "epe.network.network_factory", "epe.network.discriminators",
             "epe.network.vgg16", "epe.network.discriminator_losses", "kornia", "torchvision"]
    saved = {n: sys.modules.get(n) for n in names}
    try:
        for name, path in (("epe", code / "epe"), ("epe.network", code / "epe" / "network")):
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
        for stub in ("kornia", "torchvision"):
            try:
                importlib.import_module(stub)
            except ImportError:
                sys.modules[stub] = types.ModuleType(stub)
                sys.modules[stub].models = types.SimpleNamespace()  # type: ignore[attr-defined]
        discriminators = importlib.import_module("epe.network.discriminators")
        vgg16 = importlib.import_module("epe.network.vgg16")
        losses = importlib.import_module("epe.network.discriminator_losses")
        yield types.SimpleNamespace(discriminators=discriminators, vgg16=vgg16, losses=losses)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def reference_keys(net: types.SimpleNamespace, config: dict) -> list[list]:
    torch.manual_seed(0)
    disc = net.discriminators.PerceptualProjectionDiscEnsemble(dict(config))
    return [[k, list(v.shape)] for k, v in disc.state_dict().items()]


def random_vgg(seed: int = 0) -> VGG16:
    torch.manual_seed(seed)
    vgg = VGG16("replicate")
    for m in vgg.features:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.normal_(m.bias, std=0.1)
    return vgg.eval().requires_grad_(False)


def reference_vgg(net: types.SimpleNamespace, ours: VGG16) -> nn.Module:
    """The reference's VGG16 (replicate padding) around a copy of our convs, in torchvision's layout."""
    def fake_vgg16(pretrained: bool = False) -> types.SimpleNamespace:
        features = copy.deepcopy(ours.features)
        for m in features:
            if isinstance(m, nn.Conv2d):
                m.padding = (1, 1)  # torchvision's; the reference sets it to 0 and pads itself
        classifier = nn.Sequential(*[nn.Linear(1, 1) for _ in range(7)])
        return types.SimpleNamespace(features=features, classifier=classifier)

    original = net.vgg16.models
    net.vgg16.models = types.SimpleNamespace(vgg16=fake_vgg16)
    try:
        return net.vgg16.VGG16().eval()
    finally:
        net.vgg16.models = original


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


needs_reference = pytest.mark.skipif(reference_code_dir() is None, reason="EPEFLOW_REFERENCE_CODE is not set")


@needs_reference
def test_recorded_keys_are_the_reference_keys():
    with reference_network(reference_code_dir()) as net:
        recorded = json.loads(KEYS_FILE.read_text())
        assert [r["config"] for r in recorded] == RECORDED_CONFIGS
        for r in recorded:
            assert reference_keys(net, r["config"]) == r["keys"]


@needs_reference
@pytest.mark.parametrize("size", [(48, 64), (53, 70), (196, 196)])
def test_realism_maps_equal_the_reference(size):
    vgg = random_vgg()
    with reference_network(reference_code_dir()) as net:
        torch.manual_seed(1)
        ref = net.discriminators.PerceptualProjectionDiscEnsemble(dict(RECORDED_CONFIGS[0])).eval()
        for p in ref.parameters():  # GroupNorm starts at weight 1 / bias 0: make every parameter matter
            p.data.add_(torch.randn_like(p) * 0.1)
        ref_vgg = reference_vgg(net, vgg)
        ours = PPDE(PPDEConfig(**RECORDED_CONFIGS[0])).eval()
        ours.load_state_dict(ref.state_dict(), strict=True)

        torch.manual_seed(2)
        image = torch.rand(1, 3, *size)
        labels = torch.randint(0, 194, (1, 1, *size))
        ref_image, our_image = image.clone().requires_grad_(), image.clone().requires_grad_()
        expected = ref(vgg=ref_vgg, img=ref_image, robust_labels=labels, fix_input=False, run_discs=True)
        got = ours(vgg(our_image, ours.input_names), labels[:, 0])
        # the real loss's gradient w.r.t. the image, which the R1 penalty squares
        sum(net.losses.LSLoss().forward_real(e).mean() for e in expected).backward()
        GAN_LOSSES["ls"]().real(got).backward()
    torch.testing.assert_close(our_image.grad, ref_image.grad, atol=1e-5, rtol=1e-4)
    assert len(got) == len(expected) == 10
    diffs = [(g - e).abs().max().item() for g, e in zip(got, expected, strict=True)]
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
    scale = max(e.abs().max().item() for e in expected)
    print(f"max abs difference over the 10 realism maps at {size}: {max(diffs):.3g} (max |map| {scale:.3g})")
    assert max(diffs) < 1e-4


@needs_reference
@pytest.mark.parametrize("config", RECORDED_CONFIGS, ids=str)
def test_reference_files_import_and_exported_files_load_in_the_reference(tmp_path, config):
    with reference_network(reference_code_dir()) as net:
        torch.manual_seed(3)
        ref = net.discriminators.PerceptualProjectionDiscEnsemble(dict(config))
        torch.save(ref.state_dict(), tmp_path / "ref_disc-network.pth.tar")  # as the reference's _save_model
        ours, got = import_discriminator(tmp_path / "ref_disc-network.pth.tar")
        assert got == PPDEConfig(**config)
        torch.manual_seed(4)
        export_discriminator(PPDE(got), tmp_path / "ours_disc-network.pth.tar")
        exported = torch.load(tmp_path / "ours_disc-network.pth.tar")
        ref.load_state_dict(exported)  # strict, as the reference loads
        assert all(torch.equal(v, exported[k]) for k, v in ref.state_dict().items())


@needs_reference
@pytest.mark.parametrize("name", ["ls", "hinge", "ns"])
def test_gan_losses_match_the_references(name):
    with reference_network(reference_code_dir()) as net:
        ref = {"ls": net.losses.LSLoss, "hinge": net.losses.HingeLoss, "ns": net.losses.NSLoss}[name]()
    torch.manual_seed(5)
    maps = [torch.randn(1, 1, 4, 5) * 2, torch.randn(1, 1, 3, 3) * 2]
    ours = GAN_LOSSES[name]()
    for mine, theirs in ((ours.real, ref.forward_real), (ours.fake, ref.forward_fake),
                         (ours.generator, ref.forward_gen)):
        torch.testing.assert_close(mine(maps), sum(theirs(m).mean() for m in maps))


if __name__ == "__main__" and "--record" in sys.argv:
    code_dir = reference_code_dir()
    if code_dir is None:
        sys.exit("set EPEFLOW_REFERENCE_CODE to the directory holding the reference's code/")
    with reference_network(code_dir) as network:
        records = [{"config": c, "keys": reference_keys(network, c)} for c in RECORDED_CONFIGS]
    KEYS_FILE.parent.mkdir(parents=True, exist_ok=True)
    blocks = [
        f'{{"config": {json.dumps(r["config"])}, "keys": [\n' + ",\n".join(json.dumps(k) for k in r["keys"]) + "]}"
        for r in records
    ]
    KEYS_FILE.write_text("[\n" + ",\n".join(blocks) + "\n]\n")
    print(f"wrote {KEYS_FILE}")
