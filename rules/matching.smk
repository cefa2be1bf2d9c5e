rule knn:
    input:
        src=dataset_path("source", "crops.zarr"),
        dst=dataset_path("target", "crops.zarr"),
    output:
        directory("results/{exp}/matching/knn.zarr"),
    log:
        "logs/knn/{exp}.log",
    benchmark:
        "benchmarks/knn/{exp}.tsv"
    params:
        spec=lambda wc: as_json(experiment(wc)["knn"]),
    threads: stage_threads("knn")
    resources:
        **stage_resources("knn", frames=knn_frames, need_gpus=gpus_unless_cpu("knn")),
    conda:
        "../envs/faiss.yaml"
    shell:
        "epeflow on-gpus {resources.gpu} -- epeflow knn {input.src} {input.dst} {output} --spec {params.spec:q} --threads {threads} &> {log}"


# filter -> weights -> preview: short CPU steps, one cluster job (one scheduler round trip, not three).
rule filter_matches:
    input:
        knn="results/{exp}/matching/knn.zarr",
        src=dataset_path("source", "crops.zarr"),
        dst=dataset_path("target", "crops.zarr"),
    output:
        "results/{exp}/matching/matches.parquet",
    log:
        "logs/filter/{exp}.log",
    benchmark:
        "benchmarks/filter/{exp}.tsv"
    params:
        max_dist=lambda wc: experiment(wc)["max_dist"],
    group:
        "matching"
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow filter {input.knn} {input.src} {input.dst} {output} --max-dist {params.max_dist} &> {log}"


rule sampling_weights:
    input:
        matches="results/{exp}/matching/matches.parquet",
        crops=dataset_path("source", "crops.zarr"),
        manifest=dataset_path("source", "manifest.parquet"),
    output:
        "results/{exp}/matching/weights.parquet",
    log:
        "logs/weights/{exp}.log",
    benchmark:
        "benchmarks/weights/{exp}.tsv"
    group:
        "matching"
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow weights {input.matches} {input.crops} {input.manifest} {output} &> {log}"


rule match_preview:
    input:
        matches="results/{exp}/matching/matches.parquet",
        knn="results/{exp}/matching/knn.zarr",
        src=dataset_path("source", "manifest.parquet"),
        dst=dataset_path("target", "manifest.parquet"),
        src_crops=dataset_path("source", "crops.zarr"),
        dst_crops=dataset_path("target", "crops.zarr"),
    output:
        grid=report("results/{exp}/matching/preview.png", caption="../workflow/report/preview.rst", category="Matching"),
        hist=report("results/{exp}/matching/distances.png", caption="../workflow/report/distances.rst", category="Matching"),
    log:
        "logs/match_preview/{exp}.log",
    params:
        max_dist=lambda wc: experiment(wc)["max_dist"],
    group:
        "matching"
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow preview {input.matches} {input.knn} {input.src} {input.dst} --src-crops {input.src_crops} "
        "--dst-crops {input.dst_crops} --grid {output.grid} "
        "--hist {output.hist} --max-dist {params.max_dist} &> {log}"
