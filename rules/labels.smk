rule labels_shard:
    input:
        manifest="results/datasets/{ds}/manifest.parquet",
    output:
        temp(directory("results/datasets/{ds}/labels_shards/{shard}-of-{n}")),
    log:
        "logs/labels/{ds}-{shard}-of-{n}.log",
    benchmark:
        "benchmarks/labels/{ds}-{shard}-of-{n}.tsv"
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
        "epeflow on-gpus {resources.gpu} -- epeflow labels {input.manifest} {output} --shard {wildcards.shard} --num-shards {wildcards.n} "
        "--spec {params.spec:q} --weights {params.weights:q} {params.random} --threads {threads} &> {log}"


# The merge only links the shards' maps into one folder: it runs where Snakemake runs, no cluster job.
localrules:
    labels,


rule labels:
    input:
        label_shards,
    output:
        directory("results/datasets/{ds}/labels"),
    log:
        "logs/labels/{ds}-merge.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow labels-merge {input} --out {output} &> {log}"
