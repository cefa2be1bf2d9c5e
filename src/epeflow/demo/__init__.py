"""The embedded demo: two procedurally generated datasets of street scenes, one rendered, one "real"."""

from epeflow.demo.generate import generate_demo

__all__ = ["generate_demo"]
