import pytest
import torch
from epe_reference import MODES, key_file, read_key_file

from epeflow.epe.generator_checkpoint import (
    export_generator,
    generator_from_state_dict,
    import_generator,
    infer_config,
    read_state_dict,
)
from epeflow.errors import EpeflowError
from epeflow.models.ienet import IENet, IENetConfig

TINY = {"width": 0.125}


def tiny(mode: str, **kw) -> IENet:
    torch.manual_seed(0)
    return IENet(IENetConfig(gbuffer_mode=mode, **{**TINY, **kw})).eval()


def sample(config: IENetConfig):
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 12, 20, generator=gen)
    if config.gbuffer_mode == "img":
        return image, None, None
    gbuffers = torch.randn(1, config.gbuffer_channels, 12, 20, generator=gen)
    cls = torch.randint(0, config.num_classes, (1, 12, 20), generator=gen)
    return image, gbuffers, torch.nn.functional.one_hot(cls, config.num_classes).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("mode", MODES)
def test_import_export_reimport_round_trip(tmp_path, mode):
    net = tiny(mode)
    first = tmp_path / "a_gen-network.pth.tar"
    export_generator(net, first, allow_nonreference=True)
    imported, config = import_generator(first)
    assert config == net.config
    export_generator(imported, tmp_path / "b_gen-network.pth.tar", allow_nonreference=True)
    again, config_again = import_generator(tmp_path / "b_gen-network.pth.tar")
    assert config_again == config
    reimported = again.state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(reimported[k], v), k
    with torch.no_grad():
        x = sample(config)
        torch.testing.assert_close(again.eval()(*x), net(*x), atol=0, rtol=0)


def test_export_writes_the_reference_layout(tmp_path):
    net = tiny("all", width=1.0)
    path = tmp_path / "pfd2cs-10000_gen-network.pth.tar"
    export_generator(net, path)
    data = torch.load(path, weights_only=True)
    assert list(data) == list(read_key_file(key_file("all")))  # a plain state dict, keys in the reference's order
    assert all(v.device.type == "cpu" for v in data.values())


@pytest.mark.parametrize("mode", MODES)
def test_infers_the_architecture_of_a_reference_state_dict(mode):
    """A state dict with exactly the reference's keys and shapes (values do not matter for inference)."""
    reference = {k: torch.zeros(shape) for k, shape in read_key_file(key_file(mode)).items()}
    assert infer_config(reference) == IENetConfig(gbuffer_mode=mode)
    if mode == "all":  # building and loading takes a second per full-size net: once is enough
        net, config = generator_from_state_dict(reference)
        assert config.class_slices == ((0, 15, 21),)
        assert torch.equal(net.state_dict()["network.stem.1.weight"], torch.zeros(16, 3, 3, 3))


def test_overrides_and_mode_for_unusual_channel_counts():
    sd = tiny("fake", gbuffer_channels=5, num_classes=3, num_stages=3, num_gbuffer_layers=1).state_dict()
    with pytest.raises(EpeflowError, match="5 G-buffer channels match none"):
        infer_config(sd)
    config = infer_config(sd, "fake")
    assert (config.gbuffer_channels, config.num_classes, config.num_stages, config.num_gbuffer_layers) == (5, 3, 3, 1)
    assert config.width == 0.125
    assert infer_config(sd, "fake", stem_norm="batch").stem_norm == "batch"
    with pytest.raises(EpeflowError, match="unknown key"):
        infer_config(sd, "fake", colour=1)


def test_a_state_dict_that_does_not_fit_lists_the_keys():
    sd = dict(tiny("fake").state_dict())
    del sd["network.stem.1.weight"]
    del sd["network.up_layers.2.5.bias"]
    sd["network.extra.weight"] = torch.zeros(1)
    sd["network.stem.2.weight"] = torch.zeros(5)
    with pytest.raises(EpeflowError) as info:
        generator_from_state_dict(sd, source="x_gen-network.pth.tar")
    msg = str(info.value)
    assert msg.startswith("x_gen-network.pth.tar: does not fit")
    assert "2 missing: network.stem.1.weight, network.up_layers.2.5.bias" in msg
    assert "1 unexpected: network.extra.weight" in msg
    assert "network.stem.2.weight (5,) != (8,)" in msg


def test_many_missing_keys_are_cut_short():
    sd = {k: v for k, v in tiny("fake", num_stages=3).state_dict().items() if "class_encoders" not in k}
    sd["network.gbuffer_encoder.class_encoders.0.0.conv.1.weight_orig"] = torch.zeros(8, 32, 3, 3)
    with pytest.raises(EpeflowError, match=r"missing: .*\.\.\. \(\d+ more\)"):
        generator_from_state_dict(sd)


def test_wrong_mode_for_the_file_is_reported(tmp_path):
    path = tmp_path / "g.pth.tar"
    export_generator(tiny("geometry"), path, allow_nonreference=True)
    with pytest.raises(EpeflowError, match="unexpected: network.gbuffer_encoder"):
        import_generator(path, "img")


def test_files_that_are_not_generator_checkpoints(tmp_path):
    with pytest.raises(EpeflowError, match="no such generator checkpoint"):
        read_state_dict(tmp_path / "missing.pth.tar")
    (tmp_path / "junk.pth.tar").write_text("not torch")
    with pytest.raises(EpeflowError, match="not a readable torch checkpoint"):
        import_generator(tmp_path / "junk.pth.tar")
    torch.save({"generator.network.stem.1.weight": torch.zeros(1)}, tmp_path / "gan.pth.tar")
    with pytest.raises(EpeflowError, match="no key starts with 'network.'"):
        import_generator(tmp_path / "gan.pth.tar")
    torch.save({"iterations": 3}, tmp_path / "state.pth.tar")
    with pytest.raises(EpeflowError, match="expected a state dict"):
        import_generator(tmp_path / "state.pth.tar")


def test_export_refuses_what_the_reference_cannot_build(tmp_path):
    with pytest.raises(EpeflowError, match="width 0.125"):
        export_generator(tiny("fake"), tmp_path / "g.pth.tar")
    assert not (tmp_path / "g.pth.tar").exists()
