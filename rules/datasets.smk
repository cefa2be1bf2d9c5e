rule demo_data:
    output:
        directory("results/datasets/{ds}/demo"),
    log:
        "logs/demo_data/{ds}.log",
    benchmark:
        "benchmarks/demo_data/{ds}.tsv"
    params:
        spec=dataset_settings("demo"),
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow demo {output} --spec {params.spec:q} &> {log}"


rule manifest:
    input:
        demo_input,
    output:
        manifest="results/datasets/{ds}/manifest.parquet",
        skipped="results/datasets/{ds}/skipped.tsv",
    log:
        "logs/manifest/{ds}.log",
    benchmark:
        "benchmarks/manifest/{ds}.tsv"
    params:
        spec=dataset_settings("manifest"),
        content=dataset_content,  # not passed on: a change of the files reruns the job
        demo=lambda wc, input: f"--demo-dir {input[0]}" if input else "",
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow manifest {wildcards.ds} {output.manifest} --skipped {output.skipped} "
        "--spec {params.spec:q} {params.demo} --threads {threads} &> {log}"
