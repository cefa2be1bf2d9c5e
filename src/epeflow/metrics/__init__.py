"""Evaluation metrics: LPIPS (also a training loss), KID and Fréchet distance on VGG16 features, sKVD / cKVD,
temporal tOF / tLP and semantic consistency (mIoU of label maps).

`kid`, `fid`, `skvd` and `ckvd` are pure functions on feature arrays (and label grids), `tof` / `tlp` on frame
sequences, `confusion` / `mean_iou` on label maps; `run_evaluate` is the stage that computes them from frames.
"""

from epeflow.common.lpips import LPIPS, build_lpips
from epeflow.metrics.consistency import confusion, mean_iou
from epeflow.metrics.evaluate import METRICS, EvalContext, run_evaluate
from epeflow.metrics.kid import FidResult, KidResult, fid, kid, mmd2_unbiased
from epeflow.metrics.skvd import CkvdResult, SkvdResult, ckvd, label_grid, match_crops, skvd
from epeflow.metrics.temporal import tlp, tof

__all__ = ["LPIPS", "METRICS", "CkvdResult", "EvalContext", "FidResult", "KidResult", "SkvdResult", "build_lpips",
           "ckvd", "confusion", "fid", "kid", "label_grid", "match_crops", "mean_iou", "mmd2_unbiased", "run_evaluate",
           "skvd", "tlp", "tof"]
