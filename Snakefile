# epeflow: Enhancing Photorealism Enhancement as one cached, resumable DAG.
# This file is a table of contents; every rule lives in rules/<stage>.smk and calls one `epeflow` command.
from snakemake.utils import min_version

min_version("9.0")


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


rule all:
    input:
        default_targets(),
    default_target: True
