rule evaluate:
    input:
        enhanced="results/{exp}/enhanced",
        src_manifest=dataset_path("source", "manifest.parquet"),
        dst_manifest=dataset_path("target", "manifest.parquet"),
        src_labels=dataset_path("source", "labels"),
        dst_labels=dataset_path("target", "labels"),
    output:
        report(
            "results/{exp}/metrics.json",
            caption="../workflow/report/metrics.rst",
            category="Evaluation",
            labels={"experiment": "{exp}", "file": "metrics.json"},
        ),
    log:
        "logs/evaluate/{exp}.log",
    benchmark:
        "benchmarks/evaluate/{exp}.tsv"
    params:
        spec=lambda wc: as_json(experiment(wc)["evaluate"]),
        weights=weights_json("vgg16", "lpips", "mseg"),
        random=experiment_random_flag,
    threads: stage_threads("evaluate")
    resources:
        **stage_resources("evaluate", frames=evaluate_frames, need_gpus=gpus_unless_cpu("evaluate")),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow on-gpus {resources.gpu} -- epeflow evaluate {input.enhanced} {input.src_manifest} {input.dst_manifest} {output} "
        "--src-labels {input.src_labels} --dst-labels {input.dst_labels} --spec {params.spec:q} --weights {params.weights:q} {params.random} --threads {threads} &> {log}"
