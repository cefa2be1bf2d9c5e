import numpy as np
import pytest

from epeflow.cli import main

COMMANDS = [
    ["epe"],
    ["epe", "find-knn"],
    ["epe", "filter"],
    ["epe", "compute-weights"],
    ["epe", "export"],
    *[["epe", "export", w] for w in ("crops", "knn", "matches", "weights", "filelist")],
    ["epe", "import"],
    *[["epe", "import", w] for w in ("crops", "knn", "matches", "weights", "generator", "run")],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: epeflow " + " ".join(command) in capsys.readouterr().out


def test_reference_arguments_run_the_three_scripts(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("src", 12), ("dst", 9)):
        np.savez_compressed(tmp_path / f"crop_{name}.npz", crops=np.abs(rng.standard_normal((n, 512))).astype("f2"))
        lines = ["id,path,r0,r1,c0,c1"] + [
            f"{i},/d/{name}/{i // 3}.png,{i},{i + 8},{2 * i},{2 * i + 8}" for i in range(n)
        ]
        (tmp_path / f"crop_{name}.csv").write_text("\n".join(lines) + "\n")
    t = str(tmp_path)
    assert main(["epe", "find-knn", f"{t}/crop_src.npz", f"{t}/crop_dst.npz", f"{t}/knn", "-k", "3"]) == 0
    assert (
        main(["epe", "filter", f"{t}/knn.npz", f"{t}/crop_src.csv", f"{t}/crop_dst.csv", "4.0", f"{t}/matched.csv"])
        == 0
    )
    assert main(["epe", "compute-weights", f"{t}/matched.csv", "40", "50", f"{t}/weights.npz"]) == 0
    with np.load(tmp_path / "weights.npz") as data:
        assert data["w"].shape == (36, 1)
    assert (tmp_path / "matched.csv").read_text().count("\n") == 37
