# Forced-choice Yes/No evaluation of every projector trained on questions, on the seen, unseen, leaf and
# null test sets, with each question's margin without the image and the prediction of every decision rule,
# at the end of training and at every point it kept (training.eval_every);
# and naming by likelihood of every projector, whatever its objective (evaluation.naming).

TEST_TABLES = {
    "seen": f"{CONDITION_DIR}/test_seen.tsv",
    "unseen": f"{CONDITION_DIR}/test_unseen.tsv",
    "leaf": f"{CONDITION_DIR}/test_leaf.tsv",
    "null": f"{CONDITION_DIR}/test_null.tsv",
}


rule evaluate_projector:
    input:
        **TEST_TABLES,
        features=FEATURES,
        projector=f"{YESNO_RUN_DIR}/projector.pt",
        checkpoints=f"{YESNO_RUN_DIR}/checkpoints.pt",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("evaluate_projector.py"),
    output:
        predictions=f"{YESNO_RUN_DIR}/predictions.tsv",
        by_step=f"{YESNO_RUN_DIR}/predictions_by_step.tsv",
    log:
        f"logs/evaluate_projector/{YESNO_RUN}.log",
    benchmark:
        f"results/timings/evaluate_projector/{YESNO_RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("evaluate"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        batch_size=config["evaluation"]["batch_size"],
    script:
        "../scripts/evaluate_projector.py"


rule name_projector:
    input:
        **TEST_TABLES,
        features=FEATURES,
        projector=f"{RUN_DIR}/projector.pt",
        concepts=f"{DATA}/concepts.tsv",
        hypernyms=f"{DATA}/hypernyms.tsv",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("name_projector.py"),
    output:
        f"{RUN_DIR}/naming.tsv",
    log:
        f"logs/name_projector/{RUN}.log",
    benchmark:
        f"results/timings/name_projector/{RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("evaluate"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        batch_size=config["evaluation"]["batch_size"],
    script:
        "../scripts/name_projector.py"
