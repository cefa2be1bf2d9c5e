import pandas as pd
import pytest
from crop_fixtures import make_dataset

from epeflow.artifacts.manifest import read_frames
from epeflow.errors import EpeflowError
from epeflow.io import read_table, write_table


def test_reads_the_contract_columns(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(16, 20), (18, 24)])
    frames = read_frames(manifest, extra=["split"])
    assert list(frames.columns) == ["frame", "id", "path", "height", "width", "split"]
    assert frames["height"].tolist() == [16, 18]


def test_missing_column_names_the_manifest(tmp_path):
    path = tmp_path / "manifest.parquet"
    write_table(path, pd.DataFrame({"frame": [0], "id": ["a"], "path": ["a.png"], "height": [4]}))
    with pytest.raises(EpeflowError, match=r"manifest\.parquet lacks column\(s\) width"):
        read_frames(path)


def test_frame_must_equal_row_number(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(16, 20), (18, 24)])
    df, meta = read_table(manifest)
    df["frame"] = [1, 0]
    write_table(manifest, df, meta)
    with pytest.raises(EpeflowError, match="row number"):
        read_frames(manifest)
