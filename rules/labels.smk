rule labels:
    input:
        manifest="results/datasets/{ds}/manifest.parquet",
    output:
        directory("results/datasets/{ds}/labels"),
    log:
        "logs/labels/{ds}.log",
    benchmark:
        "benchmarks/labels/{ds}.tsv"
    params:
        spec=dataset_settings("labels"),
        weights=dataset_weights("labels"),
        random=dataset_random_flag("labels"),
    threads: stage_threads("labels")
    resources:
        **stage_resources("labels", need_gpus=lambda wc: 1 if dataset(wc.ds)["labels"] == "mseg" else 0),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow on-gpus {resources.gpu} -- epeflow labels {input.manifest} {output} --spec {params.spec:q} "
        "--weights {params.weights:q} {params.random} --threads {threads} &> {log}"
