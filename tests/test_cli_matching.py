import json

import pytest
from crop_fixtures import make_crop_store_pair

from epeflow.cli import main
from epeflow.io import read_table


@pytest.mark.parametrize("command", ["knn", "filter", "weights", "preview"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: epeflow " + command in capsys.readouterr().out


@pytest.fixture
def stores(tmp_path):
    return {name: (str(m), str(c)) for name, (m, c) in make_crop_store_pair(tmp_path).items()}


def test_matching_commands_as_the_rules_call_them(tmp_path, stores):
    (src_manifest, src), (dst_manifest, dst) = stores["syn"], stores["real"]
    m = tmp_path / "matching"
    spec = json.dumps(
        {"k": 3, "index": "flat", "nlist": None, "nprobe": 16, "pq_m": 64, "chunk_size": 5, "device": "auto"}
    )
    assert main(["knn", src, dst, str(m / "knn.zarr"), "--spec", spec, "--threads", "2"]) == 0
    assert main(["filter", str(m / "knn.zarr"), src, dst, str(m / "matches.parquet"), "--max-dist", "4.0"]) == 0
    assert main(["weights", str(m / "matches.parquet"), src, src_manifest, str(m / "weights.parquet")]) == 0
    assert (
        main(
            [
                "preview",
                str(m / "matches.parquet"),
                str(m / "knn.zarr"),
                src_manifest,
                dst_manifest,
                "--src-crops",
                src,
                "--dst-crops",
                dst,
                "--grid",
                str(m / "preview.png"),
                "--hist",
                str(m / "distances.png"),
                "--max-dist",
                "4.0",
            ]
        )
        == 0
    )
    matches, _ = read_table(m / "matches.parquet")
    weights, _ = read_table(m / "weights.parquet")
    assert len(matches) == 36 and len(weights) == 36
    assert (m / "preview.png").stat().st_size > 0 and (m / "distances.png").stat().st_size > 0


def test_empty_filter_is_a_clean_error(tmp_path, stores, capsys):
    (_, src), (_, dst) = stores["syn"], stores["real"]
    assert main(["knn", src, dst, str(tmp_path / "knn.zarr"), "--spec", '{"k": 2}']) == 0
    code = main(["filter", str(tmp_path / "knn.zarr"), src, dst, str(tmp_path / "m.parquet"), "--max-dist", "1e-9"])
    err = capsys.readouterr().err
    assert code == 2 and "experiments.<exp>.max_dist" in err and "Traceback" not in err
