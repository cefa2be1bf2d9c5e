"""Our IENet against the reference generator, imported at run time from $EPEFLOW_REFERENCE_CODE.

Skipped unless that variable is set (e.g. to a folder holding the reference's `code/`). For each G-buffer
mode: build the reference ResidualGenerator at full width, randomise it, save its state dict as the
reference does, import it, and compare outputs (fp32, CPU, eval mode; train mode for one mode, where
spectral norms also run a power iteration), then check the reference loads our export strictly.
"""

from types import SimpleNamespace

import pytest
import torch
from epe_reference import MODES, build_reference_generator, reference_code_dir, reference_network_modules

from epeflow.epe.generator_checkpoint import export_generator, import_generator
from epeflow.models.gbuffer_encoder import settle_spectral_norms

CODE = reference_code_dir()
pytestmark = pytest.mark.skipif(CODE is None, reason="set EPEFLOW_REFERENCE_CODE to the reference code to compare")
H, W = 64, 96
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference():
    with reference_network_modules(CODE) as modules:
        yield modules


@torch.no_grad()
def randomise(net: torch.nn.Module, seed: int) -> None:
    """Non-trivial norm parameters, biases and BatchNorm statistics, and settled spectral norms."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in net.named_parameters():
        if p.ndim == 1:
            centre = 1.0 if name.endswith("weight") else 0.0  # 1-D weights are norm scales
            p.copy_(centre + 0.2 * torch.randn(p.shape, generator=gen))
    for name, b in net.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(0.1 * torch.randn(b.shape, generator=gen))
        elif name.endswith("running_var"):
            b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    settle_spectral_norms(net)


def batch(num_channels: int, num_classes: int, seed: int) -> SimpleNamespace:
    """One image with G-buffers and materials in 8x8 blocks, as the reference's EPEBatch carries them."""
    gen = torch.Generator().manual_seed(seed)
    img = torch.rand(1, 3, H, W, generator=gen)
    if num_classes == 0:
        return SimpleNamespace(img=img, gbuffers=None, gt_labels=None)
    gbuffers = torch.randn(1, num_channels, H, W, generator=gen)
    cls = torch.randint(0, num_classes, (1, 1, H // 8, W // 8), generator=gen).float()
    cls = torch.nn.functional.interpolate(cls, scale_factor=8, mode="nearest").long()[:, 0]
    labels = torch.nn.functional.one_hot(cls, num_classes).permute(0, 3, 1, 2).float()
    return SimpleNamespace(img=img, gbuffers=gbuffers, gt_labels=labels)


@pytest.mark.parametrize("mode", MODES)
def test_outputs_match_the_reference(reference, tmp_path, mode):
    torch.manual_seed(0)
    ref = build_reference_generator(reference, mode)
    randomise(ref, seed=1)
    path = tmp_path / "pfd2cs_gen-network.pth.tar"
    torch.save(ref.state_dict(), path)  # what GANExperiment._save_model writes
    ours, config = import_generator(path)
    assert config.gbuffer_mode == mode
    x = batch(config.gbuffer_channels, 0 if mode == "img" else config.num_classes, seed=2)

    ref.eval(), ours.eval()
    with torch.no_grad():
        expected, got = ref(x), ours(x.img, x.gbuffers, x.gt_labels)
        residual_diff = (ref.network(x) - ours.network(x.img, x.gbuffers, x.gt_labels)).abs().max().item()
    diff = (expected - got).abs().max().item()
    print(f"\n{mode}: eval max |enhanced diff| {diff:.3g}, max |residual diff| {residual_diff:.3g}")
    assert diff < TOLERANCE and residual_diff < TOLERANCE

    if mode == "fake":  # train mode: one power iteration per spectral norm, u and v updated in place
        ref.train(), ours.train()
        with torch.no_grad():
            diff = (ref(x) - ours(x.img, x.gbuffers, x.gt_labels)).abs().max().item()
        u = "network.layer1.0.bn1._conv.0.conv.1.weight_u"
        torch.testing.assert_close(ours.state_dict()[u], ref.state_dict()[u])
        print(f"{mode}: train max |enhanced diff| {diff:.3g}")
        assert diff < TOLERANCE

    export_generator(ours, tmp_path / "ours_gen-network.pth.tar")
    fresh = build_reference_generator(reference, mode)
    fresh.load_state_dict(torch.load(tmp_path / "ours_gen-network.pth.tar"), strict=True)  # as the reference loads
    if mode == "fake":  # against ref as it is now (the train-mode step above moved its spectral norms)
        with torch.no_grad():
            assert (fresh.eval()(x) - ref.eval()(x)).abs().max().item() < TOLERANCE
