"""A failing rule's real error on screen, not only in its log."""

from __future__ import annotations

import io

from workflow_fixtures import copy_workflow, snakemake

from epeflow.failed_jobs import error_lines, failed_jobs, print_failures

RUN_LOG = """\
[Wed Dec  2 01:20:38 2026]
Error in rule manifest:
    message: None
    jobid: 0
    output: results/datasets/broken/manifest.parquet, results/datasets/broken/skipped.tsv
    log: logs/manifest/broken.log (check log file(s) for error details)
    shell:
        epeflow manifest broken ... &> logs/manifest/broken.log
Error in rule knn:
    jobid: 3
    log: logs/knn/a.log, logs/knn/b.log (check log file(s) for error details)
Shutting down, this might take some time.
"""


def test_failed_jobs_and_their_logs_are_read_from_the_run_log():
    assert failed_jobs(RUN_LOG) == [("manifest", ["logs/manifest/broken.log"]),
                                    ("knn", ["logs/knn/a.log", "logs/knn/b.log"])]


def test_the_error_line_is_picked_from_a_job_log():
    ours = "INFO listing\nprogress 10%\nepeflow knn: error: invalid knn settings:\n  config key `knn.k`: 0\nbye\n"
    assert error_lines(ours) == ["epeflow knn: error: invalid knn settings:", "  config key `knn.k`: 0"]
    traceback = ("Traceback (most recent call last):\n  File \"x.py\", line 1\n    boom()\n"
                 "RuntimeError: CUDA out of memory\n")
    assert error_lines(traceback) == ["RuntimeError: CUDA out of memory"]
    assert error_lines("a\n\nb\nc\nd\n") == ["b", "c", "d"]


def test_print_failures_names_rule_log_and_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs" / "manifest").mkdir(parents=True)
    (tmp_path / "logs" / "manifest" / "broken.log").write_text("epeflow manifest: error: image x.png is corrupt\n")
    (tmp_path / "run.log").write_text(RUN_LOG)
    out = io.StringIO()
    print_failures([str(tmp_path / "run.log")], out)
    assert out.getvalue().splitlines()[:2] == ["rule manifest failed; from logs/manifest/broken.log:",
                                              "  epeflow manifest: error: image x.png is corrupt"]
    assert "rule knn failed; from logs/knn/a.log:\n  (the log file is missing)" in out.getvalue()


def test_a_failing_rule_shows_its_error_on_screen(tmp_path):
    work = tmp_path / "wf"
    copy_workflow(work)
    (work / "imgs").mkdir()
    (work / "imgs" / "a.png").write_text("not a png")
    (work / "broken.yaml").write_text("datasets:\n  broken: {role: real, images: imgs}\n")
    run = snakemake(work, "results/datasets/broken/manifest.parquet", "--configfile", "broken.yaml")
    assert run.returncode == 1
    screen = run.stdout + run.stderr
    assert "rule manifest failed; from logs/manifest/broken.log:\n  epeflow manifest: error: dataset 'broken': image " \
           f"{work / 'imgs' / 'a.png'} is corrupt or truncated" in screen, screen[-3000:]
