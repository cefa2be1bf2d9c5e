rule report_html:
    input:
        metrics="results/{exp}/metrics.json",
        model="results/{exp}/model.pt",
        enhanced="results/{exp}/enhanced",
        matches="results/{exp}/matching/matches.parquet",
        weights="results/{exp}/matching/weights.parquet",
        preview="results/{exp}/matching/preview.png",
        distances="results/{exp}/matching/distances.png",
        src_crops=dataset_path("source", "crops.zarr"),
        dst_crops=dataset_path("target", "crops.zarr"),
    output:
        report(
            "results/{exp}/report.html",
            caption="../workflow/report/report.rst",
            category="Report",
            labels={"experiment": "{exp}", "file": "report.html"},
        ),
    log:
        "logs/report/{exp}.log",
    threads: stage_threads("default")
    resources:
        **stage_resources("default"),
    conda:
        "../envs/epeflow.yaml"
    shell:
        "epeflow report {wildcards.exp} {output} --metrics {input.metrics} --model {input.model} "
        "--enhanced {input.enhanced} --matches {input.matches} --pair-weights {input.weights} "
        "--preview {input.preview} --distances {input.distances} --src-crops {input.src_crops} "
        "--dst-crops {input.dst_crops} &> {log}"
