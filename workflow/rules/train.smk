# One projector per (encoder, LM, init, condition, shuffle, objective, seed); the encoder and LM stay
# frozen. The objective picks the training table: questions (yesno) or captions (caption, LiMBeR).

RUN = "{encoder}/{lm}/{init}/{condition}/{shuffle}/{objective}/seed{seed}"
TRAIN_TABLES = {"yesno": "train.tsv", "caption": "train_captions.tsv"}


rule train_projector:
    input:
        features="results/features/{encoder}.pt",
        train=lambda wc: f"results/conditions/{wc.condition}/{wc.shuffle}/{TRAIN_TABLES[wc.objective]}",
        val="results/conditions/{condition}/{shuffle}/val_leaf.tsv",
        concepts=f"{DATA}/concepts.tsv",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("train_projector.py"),
    output:
        projector=f"results/runs/{RUN}/projector.pt",
        curve=f"results/runs/{RUN}/curve.tsv",
        config=f"results/runs/{RUN}/train_config.json",
        val_curve=f"results/runs/{RUN}/val_curve.tsv",
        checkpoints=f"results/runs/{RUN}/checkpoints.pt",
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
