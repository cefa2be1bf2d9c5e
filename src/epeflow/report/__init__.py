"""The experiment report: one self-contained HTML page of metrics, curves, matching statistics and frames."""

from epeflow.report.report import ReportInputs, build_report, render_html

__all__ = ["ReportInputs", "build_report", "render_html"]
