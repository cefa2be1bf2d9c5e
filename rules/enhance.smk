rule enhance_shard:
    input:
        model="results/{exp}/model.pt",
        manifest=dataset_path("source", "manifest.parquet"),
        gbuffers=gbuffers_input,
        labels=materials_labels_input,
    output:
        temp(directory("results/{exp}/enhanced_shards/{shard}-of-{n}")),
    log:
        "logs/enhance/{exp}-{shard}-of-{n}.log",
    benchmark:
        "benchmarks/enhance/{exp}-{shard}-of-{n}.tsv"
    params:
        spec=lambda wc: as_json(experiment(wc)["enhance"]),
        gbuffers=lambda wc, input: input.gbuffers or "-",  # `-`: an image-only generator
        labels=materials_labels_flag,
    threads: stage_threads("enhance")
    resources:
        **stage_resources("enhance", frames=enhance_frames, need_gpus=gpus_unless_cpu("enhance")),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow on-gpus {resources.gpu} -- epeflow enhance {input.model} {input.manifest} {params.gbuffers} "
        "{output} {params.labels} --shard {wildcards.shard} --num-shards {wildcards.n} --spec {params.spec:q} "
        "--threads {threads} &> {log}"


# The merge only links the shards' frames into one folder: it runs where Snakemake runs, no cluster job.
localrules:
    enhance,


rule enhance:
    input:
        enhance_shards,
    output:
        directory("results/{exp}/enhanced"),
    log:
        "logs/enhance/{exp}-merge.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow enhance-merge {input} --out {output} &> {log}"
