# One projector per (encoder, LM, init, condition, shuffle, objective, seed); the encoder and LM stay
# frozen. The objective picks the training table: questions (yesno) or captions (caption, LiMBeR).

TRAIN_TABLES = {"yesno": "train.tsv", "caption": "train_captions.tsv"}


rule train_projector:
    input:
        features=FEATURES,
        train=lambda wc: f"results/conditions/{wc.condition}/{wc.shuffle}/{TRAIN_TABLES[wc.objective]}",
        val=f"{CONDITION_DIR}/val_leaf.tsv",
        concepts=f"{DATA}/concepts.tsv",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("train_projector.py"),
    output:
        projector=f"{RUN_DIR}/projector.pt",
        curve=f"{RUN_DIR}/curve.tsv",
        config=f"{RUN_DIR}/train_config.json",
        val_curve=f"{RUN_DIR}/val_curve.tsv",
        checkpoints=f"{RUN_DIR}/checkpoints.pt",
    log:
        f"logs/train_projector/{RUN}.log",
    benchmark:
        f"results/benchmarks/train_projector/{RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: config["compute"]["train_threads"]
    resources:
        gpu=GPU,
    params:
        lm=lambda wc: lm_spec(wc.lm),
        encoder=lambda wc: config["encoders"][wc.encoder],
        training=lambda wc: training_config(config, wc.lm),
        checkpoint=f"results/checkpoints/{RUN}/checkpoint.pt",
    script:
        "../scripts/train_projector.py"
