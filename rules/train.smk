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
        tensorboard="results/{exp}/tb",
        launcher=train_launcher,
        torch_threads=train_threads,
    threads: 8
    resources:
        mem_mb=32000,
        runtime=7 * 24 * 60,
        gpu=train_gpus,
        # SIGTERM to every process of the job step 5 min before the time limit: training finishes its step,
        # checkpoints and exits 75; the retry continues there (README, "Pre-emption"). TERM, not USR1: the
        # Snakemake that runs the job in the step waits for its job on TERM, but USR1 would kill it.
        slurm_extra="--signal=TERM@300",
    conda:
        "../envs/epeflow.yaml"
    shell:
        # exec: the signal reaches epeflow (or torchrun) itself, not a shell that would die of it first
        "exec {params.launcher} epeflow train --src-manifest {input.src_manifest} "
        "--dst-manifest {input.dst_manifest} --src-labels {input.src_labels} --dst-labels {input.dst_labels} "
        "--gbuffers {input.gbuffers} --matches {input.matches} --pair-weights {input.weights} "
        "--src-crops {input.src_crops} --dst-crops {input.dst_crops} "
        "--checkpoints {params.checkpoints} --out {output} --tensorboard {params.tensorboard} "
        "--spec {params.spec:q} --weights {params.weights:q} {params.random} --threads {params.torch_threads} &> {log}"
