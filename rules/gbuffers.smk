rule gbuffers:
    input:
        manifest="results/datasets/{ds}/manifest.parquet",
    output:
        directory("results/datasets/{ds}/gbuffers.zarr"),
    log:
        "logs/gbuffers/{ds}.log",
    benchmark:
        "benchmarks/gbuffers/{ds}.tsv"
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
        "epeflow on-gpus {resources.gpu} -- epeflow gbuffers {input.manifest} {output} --spec {params.spec:q} "
        "--weights {params.weights:q} {params.random} --threads {threads} &> {log}"
