"""Evaluation metrics: LPIPS (also a training loss), KID and Fréchet distance on VGG16 features."""

from epeflow.common.lpips import LPIPS, build_lpips
from epeflow.metrics.evaluate import METRICS, EvalContext, run_evaluate
from epeflow.metrics.kid import FidResult, KidResult, fid, kid, mmd2_unbiased

__all__ = ["LPIPS", "METRICS", "EvalContext", "FidResult", "KidResult", "build_lpips", "fid", "kid", "mmd2_unbiased",
           "run_evaluate"]
