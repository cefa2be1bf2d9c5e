# epeflow: Enhancing Photorealism Enhancement as one cached, resumable DAG.
# This file is a table of contents; every rule lives in rules/<stage>.smk and calls one `epeflow` command.
from snakemake.utils import min_version

min_version("9.0")


# Snakemake's own message for invalid YAML names neither file nor line; ours does (overlays given with
# --configfile are read before this file: `epeflow config config/config.yaml <overlay>` names their line).
from epeflow.workflow_config import exit_on_error, read_yaml_file

with exit_on_error():
    read_yaml_file("config/config.yaml")


configfile: "config/config.yaml"


# The config is validated once, in rules/common.smk, against workflow/schemas/config.schema.yaml (defaults
# filled, cross-checks, one short message per bad key).


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/datasets.smk"
include: "rules/labels.smk"
include: "rules/gbuffers.smk"
include: "rules/crops.smk"
include: "rules/matching.smk"
include: "rules/train.smk"
include: "rules/enhance.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# Rules log to files; on a failure, print the error line of each failed job's log (not only "check log").
from epeflow.failed_jobs import print_failures


onerror:
    print_failures(log)


rule all:
    input:
        default_targets(),
    default_target: True
