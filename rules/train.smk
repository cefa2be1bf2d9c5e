rule train:
    input:
        src_manifest=dataset_path("source", "manifest.parquet"),
        dst_manifest=dataset_path("target", "manifest.parquet"),
        src_labels=dataset_path("source", "labels"),
        dst_labels=dataset_path("target", "labels"),
        gbuffers=gbuffers_input,
        matches="results/{exp}/matching/matches.parquet",
        weights="results/{exp}/matching/weights.parquet",
        src_crops=dataset_path("source", "crops.zarr"),
        dst_crops=dataset_path("target", "crops.zarr"),
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
        gbuffers=gbuffers_flag,
        tensorboard="results/{exp}/tb",
        launcher=train_launcher,
        torch_threads=train_threads,
    threads: stage_threads("train")
    resources:
        # train.gpus GPUs on one node; SIGTERM 5 min before the time limit: training finishes its step,
        # checkpoints and exits 75, the profile's retry continues there (README, "Pre-emption"). TERM, not
        # USR1: the Snakemake that runs the job in the step waits for its job on TERM, but USR1 would kill it.
        **stage_resources("train", frames=lambda wc: 0, need_gpus=train_need_gpus),
    conda:
        "../envs/epeflow.yaml"
    shell:
        # exec: the signal reaches epeflow (or torchrun) itself, not a shell that would die of it first
        "exec epeflow on-gpus {resources.gpu} -- {params.launcher} epeflow train --src-manifest {input.src_manifest} "
        "--dst-manifest {input.dst_manifest} --src-labels {input.src_labels} --dst-labels {input.dst_labels} "
        "{params.gbuffers} --matches {input.matches} --pair-weights {input.weights} "
        "--src-crops {input.src_crops} --dst-crops {input.dst_crops} "
        "--checkpoints {params.checkpoints} --out {output} --tensorboard {params.tensorboard} "
        "--spec {params.spec:q} --weights {params.weights:q} {params.random} --threads {params.torch_threads} &> {log}"
