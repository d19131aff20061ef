# Forced-choice Yes/No evaluation of every trained projector on the seen, unseen and leaf test sets,
# with each question's margin without the image and the prediction of every decision rule.


rule evaluate_projector:
    input:
        features="results/features/{encoder}.pt",
        projector=f"results/runs/{RUN}/projector.pt",
        seen="results/conditions/{condition}/{shuffle}/test_seen.tsv",
        unseen="results/conditions/{condition}/{shuffle}/test_unseen.tsv",
        leaf="results/conditions/{condition}/{shuffle}/test_leaf.tsv",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("evaluate_projector.py"),
    output:
        f"results/runs/{RUN}/predictions.tsv",
    log:
        f"logs/evaluate_projector/{RUN}.log",
    benchmark:
        f"results/benchmarks/evaluate_projector/{RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: config["compute"]["train_threads"]
    resources:
        gpu=GPU,
    params:
        lm=lambda wc: lm_spec(wc.lm),
        batch_size=config["evaluation"]["batch_size"],
    script:
        "../scripts/evaluate_projector.py"
