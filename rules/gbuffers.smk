rule gbuffers_shard:
    input:
        manifest="results/datasets/{ds}/manifest.parquet",
    output:
        temp(directory("results/datasets/{ds}/gbuffers_shards/{shard}-of-{n}.zarr")),
    log:
        "logs/gbuffers/{ds}-{shard}-of-{n}.log",
    benchmark:
        "benchmarks/gbuffers/{ds}-{shard}-of-{n}.tsv"
    params:
        spec=dataset_settings("gbuffers"),
        weights=dataset_weights("gbuffers"),
        random=dataset_random_flag("gbuffers"),
    threads: stage_threads("gbuffers")
    resources:
        **stage_resources("gbuffers", need_gpus=lambda wc: 1 if dataset(wc.ds)["gbuffers"] == "fake" else 0),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow on-gpus {resources.gpu} -- epeflow gbuffers {input.manifest} {output} --shard {wildcards.shard} "
        "--num-shards {wildcards.n} --spec {params.spec:q} --weights {params.weights:q} {params.random} "
        "--threads {threads} &> {log}"


# The merge links the shards' frame files into one store and combines their moments: it runs where
# Snakemake runs, no cluster job.
localrules:
    gbuffers,


rule gbuffers:
    input:
        gbuffer_shards,
    output:
        directory("results/datasets/{ds}/gbuffers.zarr"),
    log:
        "logs/gbuffers/{ds}-merge.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow gbuffers-merge {input} --out {output} &> {log}"
