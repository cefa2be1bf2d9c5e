import pytest
import torch

from epeflow.check_weights import check_weights
from epeflow.cli import main
from epeflow.common.vgg16 import VGG16
from epeflow.errors import EpeflowError
from epeflow.labels.mseg.checkpoint import official_state_dict
from epeflow.labels.mseg.hrnet import empty_model, init_random


@pytest.fixture(scope="module")
def mseg_file(tmp_path_factory):
    model = empty_model()
    init_random(model, 2)
    path = tmp_path_factory.mktemp("w") / "mseg-download.pth"
    torch.save(official_state_dict(model), path)
    return path


def test_good_mseg_file_is_usable(mseg_file, capsys):
    assert main(["check-weights", "mseg", str(mseg_file)]) == 0
    out = capsys.readouterr().out
    assert "are usable" in out and "HRNetV2-W48" in out and "194 classes" in out


def test_mseg_file_with_missing_keys_fails_listing_them(tmp_path, mseg_file, capsys):
    state = torch.load(mseg_file, weights_only=True)["state_dict"]
    del state["module.stage4.2.fuse_layers.3.0.2.0.weight"]
    torch.save({"state_dict": state}, tmp_path / "cut.pth")
    assert main(["check-weights", "mseg", str(tmp_path / "cut.pth")]) != 0
    err = capsys.readouterr().err
    assert "missing keys: stage4.2.fuse_layers.3.0.2.0.weight" in err and "Traceback" not in err


def test_vgg16_file_good_and_truncated(tmp_path, capsys):
    state = {f"features.{k}": v for k, v in VGG16().features.state_dict().items()}
    torch.save(state, tmp_path / "vgg.pth")
    assert main(["check-weights", "vgg16", str(tmp_path / "vgg.pth")]) == 0
    assert "VGG16 trunk" in capsys.readouterr().out
    (tmp_path / "cut.pth").write_bytes((tmp_path / "vgg.pth").read_bytes()[:1000])
    assert main(["check-weights", "vgg16", str(tmp_path / "cut.pth")]) != 0
    assert "cannot be read" in capsys.readouterr().err


def test_official_name_with_other_content_and_checksum_mismatch(tmp_path):
    path = tmp_path / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in VGG16().features.state_dict().items()}, path)
    with pytest.raises(EpeflowError, match="do not match the official file"):
        check_weights("vgg16", path)
    with pytest.raises(EpeflowError, match="sha256"):
        check_weights("vgg16", tmp_path / "vgg16-397923af.pth", sha256="0" * 64)


def test_lpips_file_and_missing_file(tmp_path):
    from epeflow.common.lpips import LPIPS_CHANNELS, lin_key

    torch.save({lin_key(i): torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)}, tmp_path / "lp.pth")
    assert "LPIPS" in check_weights("lpips", tmp_path / "lp.pth")
    with pytest.raises(EpeflowError, match="does not exist"):
        check_weights("mseg", tmp_path / "nothing.pth")
