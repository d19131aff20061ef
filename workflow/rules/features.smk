# Frozen image-encoder features, computed once per encoder over every image of the dataset.


rule extract_features:
    input:
        images=f"{DATA}/images.tsv",
        weights=lambda wc: weights_dir("encoders", wc.encoder),
        code=script_code("extract_features.py"),
    output:
        FEATURES,
    log:
        "logs/extract_features/{encoder}.log",
    benchmark:
        "results/timings/extract_features/{encoder}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.feature_threads
    resources:
        **gpu_job("features"),
    params:
        spec=lambda wc: config["encoders"][wc.encoder],
        batch_size=config["compute"]["feature_batch_size"],
    script:
        "../scripts/extract_features.py"
