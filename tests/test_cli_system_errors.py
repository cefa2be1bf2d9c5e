"""Disk full, read-only disk, permission denied: one line naming the real output (not a hidden temporary)
and the stage, from real errors of small or read-only file systems."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess

import pytest

from epeflow.cli import main
from epeflow.io import real_path, system_error_message

DEMO = json.dumps({"role": "synthetic", "demo": {"frames": 8, "height": 128, "width": 256}})


def _mount_tmpfs(folder, options: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB file system: the demo's first frames fill it (ENOSPC)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=64k"):
        pytest.skip("needs root to mount a small tmpfs")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody may write to: a read-only tmpfs as root (root ignores permissions), else chmod 555."""
    folder = tmp_path / "ro"
    if os.geteuid() == 0:
        if not _mount_tmpfs(folder, "ro,size=64k"):
            pytest.skip("needs to mount a read-only tmpfs as root")
        yield folder
        subprocess.run(["umount", str(folder)], check=False)
    else:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


def test_a_full_disk_is_one_line_naming_the_output_and_the_stage(full_disk, capsys):
    out = full_disk / "demo"
    assert main(["demo", str(out), "--spec", DEMO]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"epeflow demo: error: cannot write {out}: No space left on device (ENOSPC); free disk space "
                   "(or point the output at a bigger disk) and rerun")
    assert os.listdir(full_disk) == []  # the temporary is gone


def test_a_read_only_folder_is_one_line_naming_the_output(read_only_dir, capsys):
    out = read_only_dir / "sub" / "demo"
    assert main(["demo", str(out), "--spec", DEMO]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("epeflow demo: error: cannot ") and str(read_only_dir / "sub") in err
    assert "(EROFS)" in err or "(EACCES)" in err
    assert ".tmp-" not in err


def test_temporaries_in_messages_become_the_outputs_they_stand_for():
    tmp = "/r/results/datasets/d/.crops.zarr.tmp-123-0a1b2c3d/features/0.0"
    assert real_path(tmp) == "/r/results/datasets/d/crops.zarr/features/0.0"
    message = system_error_message(OSError(errno.ENOSPC, "No space left on device", tmp))
    assert message.startswith("cannot write /r/results/datasets/d/crops.zarr/features/0.0: No space left")
    assert system_error_message(OSError(errno.ENOENT, "No such file", tmp)) is None  # not ours to rephrase
