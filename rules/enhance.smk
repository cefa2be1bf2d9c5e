rule enhance:
    input:
        model="results/{exp}/model.pt",
        manifest=dataset_path("source", "manifest.parquet"),
        gbuffers=gbuffers_input,
        labels=materials_labels_input,
    output:
        directory("results/{exp}/enhanced"),
    log:
        "logs/enhance/{exp}.log",
    benchmark:
        "benchmarks/enhance/{exp}.tsv"
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
        "epeflow on-gpus {resources.gpu} -- epeflow enhance {input.model} {input.manifest} {params.gbuffers} {output} {params.labels} "
        "--spec {params.spec:q} --threads {threads} &> {log}"
