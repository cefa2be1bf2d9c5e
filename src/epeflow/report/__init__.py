"""The experiment report: one self-contained HTML page of metrics, curves, matching statistics and frames."""

from epeflow.report.report import ReportInputs, render_html, run_report

__all__ = ["ReportInputs", "run_report", "render_html"]
