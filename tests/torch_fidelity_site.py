"""torch-fidelity for parity checks (tests/test_inception.py, bench/bench_evaluate.py); never a runtime dependency.

torch-fidelity 0.4.0 requires torchvision and would pull in another torch, so it is installed beside the
venv without dependencies:

    .venv/bin/pip install --no-deps --target /tmp/tfid_site torch-fidelity==0.4.0    # or: make torch-fidelity

and found through `EPEFLOW_TORCH_FIDELITY_SITE` (default `/tmp/tfid_site`; an installed torch-fidelity is
used as it is). The code compared (`FeatureExtractorInceptionV3`, `kid_features_to_metric`,
`fid_features_to_statistics` / `fid_statistics_to_metric`) needs no torchvision; its package imports
torchvision only for dataset and transform helpers, so where torchvision is absent an empty stand-in module is
registered for the import, and any use of it fails loudly.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

SITE_ENV = "EPEFLOW_TORCH_FIDELITY_SITE"
DEFAULT_SITE = "/tmp/tfid_site"
INSTALL = "pip install --no-deps --target /tmp/tfid_site torch-fidelity==0.4.0"


class _Absent(types.ModuleType):
    """torchvision stand-in: importable, but every attribute use raises (AttributeError, as the import
    system expects of a missing attribute)."""

    def __getattr__(self, name: str) -> object:
        raise AttributeError(f"torchvision is not installed here; torch-fidelity tried to use {self.__name__}.{name}")


def _stand_in_torchvision() -> None:
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.models"):
        sys.modules.setdefault(name, _Absent(name))
    datasets = types.ModuleType("torchvision.datasets")
    for name in ("CIFAR10", "CIFAR100", "STL10"):  # torch-fidelity subclasses these at module level
        setattr(datasets, name, type(name, (), {}))
    sys.modules.setdefault("torchvision.datasets", datasets)


def load_torch_fidelity() -> types.ModuleType | str:
    """The `torch_fidelity` package, or the reason it cannot be imported (for a skip message)."""
    site = os.environ.get(SITE_ENV, DEFAULT_SITE)
    if importlib.util.find_spec("torch_fidelity") is None and Path(site).is_dir() and site not in sys.path:
        sys.path.append(site)
    if importlib.util.find_spec("torch_fidelity") is None:
        return (f"torch-fidelity is not importable (not installed, nor in ${SITE_ENV}={site}); "
                f"install it with `{INSTALL}`")
    if importlib.util.find_spec("torchvision") is None:
        _stand_in_torchvision()
    try:
        import torch_fidelity
        import torch_fidelity.metric_fid
        import torch_fidelity.metric_kid
    except Exception as e:  # an incompatible version: say which
        return f"torch-fidelity found but not importable here ({type(e).__name__}: {e})"
    return torch_fidelity


KID_KWARGS = {"kid_subsets": 100, "kid_subset_size": 1000, "rng_seed": 2020, "kid_kernel": "poly",
              "kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None, "kid_kernel_poly_coef0": 1,
              "verbose": False}
