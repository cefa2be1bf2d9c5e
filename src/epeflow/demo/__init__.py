"""The embedded demo: two procedurally generated datasets of street scenes, one rendered, one "real"."""

from epeflow.demo.generate import run_demo

__all__ = ["run_demo"]
