rule crop_stats:
    input:
        manifest="results/datasets/{ds}/manifest.parquet",
    output:
        "results/datasets/{ds}/crop_stats.json",
    log:
        "logs/crop_stats/{ds}.log",
    benchmark:
        "benchmarks/crop_stats/{ds}.tsv"
    params:
        spec=dataset_settings("crop_stats"),  # includes crops.size: every frame must fit a crop
    priority: 10  # cheap, and it refuses frames smaller than the crop before hours of labels or G-buffers
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow crop-stats {input.manifest} {output} --spec {params.spec:q} --threads {threads} &> {log}"


rule crops_shard:
    input:
        manifest="results/datasets/{ds}/manifest.parquet",
        stats="results/datasets/{ds}/crop_stats.json",
    output:
        temp(directory("results/datasets/{ds}/crops_shards/{shard}-of-{n}.zarr")),
    log:
        "logs/crops/{ds}-{shard}-of-{n}.log",
    benchmark:
        "benchmarks/crops/{ds}-{shard}-of-{n}.tsv"
    params:
        spec=dataset_settings("crops"),
        weights=dataset_weights("crops"),
        random=dataset_random_flag("crops"),
    threads: stage_threads("crops")
    resources:
        **stage_resources("crops", need_gpus=lambda wc: 1),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow on-gpus {resources.gpu} -- epeflow crops {input.manifest} {input.stats} {output} --shard {wildcards.shard} --num-shards {wildcards.n} "
        "--spec {params.spec:q} --weights {params.weights:q} {params.random} --threads {threads} &> {log}"


# The merge copies the shards' rows into one store (I/O only): it runs where Snakemake runs, no cluster job.
localrules:
    crops,


rule crops:
    input:
        crop_shards,
    output:
        directory("results/datasets/{ds}/crops.zarr"),
    log:
        "logs/crops/{ds}-merge.log",
    benchmark:
        "benchmarks/crops/{ds}-merge.tsv"
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow crops-merge {input} --out {output} &> {log}"
