rule train:
    input:
        src_manifest=dataset_path("source", "manifest.parquet"),
        dst_manifest=dataset_path("target", "manifest.parquet"),
        src_labels=dataset_path("source", "labels"),
        dst_labels=dataset_path("target", "labels"),
        gbuffers=gbuffers_input,
        matches="results/{exp}/matching/matches.parquet",
        weights="results/{exp}/matching/weights.parquet",
        init=train_init_input,
    output:
        "results/{exp}/model.pt",
    log:
        "logs/train/{exp}.log",
    benchmark:
        "benchmarks/train/{exp}.tsv"
    params:
        spec=lambda wc: as_json(experiment(wc)["train"]),
        weights=weights_json("vgg16", "lpips"),
        random=experiment_random_flag,
        checkpoints="results/{exp}/checkpoints",
    threads: 8
    resources:
        mem_mb=32000,
        runtime=7 * 24 * 60,
        gpu=1,
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow train --src-manifest {input.src_manifest} --dst-manifest {input.dst_manifest} "
        "--src-labels {input.src_labels} --dst-labels {input.dst_labels} --gbuffers {input.gbuffers} "
        "--matches {input.matches} --pair-weights {input.weights} --checkpoints {params.checkpoints} "
        "--out {output} --spec {params.spec:q} --weights {params.weights:q} {params.random} "
        "--threads {threads} &> {log}"
