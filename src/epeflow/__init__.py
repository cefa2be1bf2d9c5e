"""epeflow: Enhancing Photorealism Enhancement as a cached, resumable pipeline."""

__version__ = "0.1.0"


def load_model(path):  # noqa: ANN001, ANN201 (kept import-free: `import epeflow` stays instant)
    """The trained generator of a model.pt, ready to call: see `epeflow.models.load_model`."""
    from epeflow.models.load import load_model as _load_model

    return _load_model(path)
