# Frozen image-encoder features, computed once per encoder over every image of the dataset.


rule extract_features:
    input:
        images=f"{DATA}/images.tsv",
        weights=lambda wc: weights_dir("encoders", wc.encoder),
        code=package_sources("features", "models.encoders", "io"),
    output:
        "results/features/{encoder}.pt",
    params:
        spec=lambda wc: config["encoders"][wc.encoder],
        batch_size=config["compute"]["feature_batch_size"],
    threads: workflow.cores
    resources:
        gpu=GPU,
    log:
        "logs/extract_features/{encoder}.log",
    benchmark:
        "benchmarks/extract_features/{encoder}.tsv"
    script:
        "../scripts/extract_features.py"
