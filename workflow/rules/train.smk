# One projector per (encoder, LM, init, condition, shuffle, objective, seed); the encoder and LM stay
# frozen. The objective picks the training table: questions (yesno) or captions (caption, LiMBeR).
# With training.fuse > 1, the grid's runs of that LM are trained by one job per fused group
# (taxvlm.config.fused_groups): a rule per group, named by its members, whose outputs are its runs'
# files (a rule without wildcards is preferred to train_projector, which trains any other run).


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
        f"results/timings/train_projector/{RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("train"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        encoder=lambda wc: config["encoders"][wc.encoder],
        training=lambda wc: training_config(config, wc.lm, wc.objective, wc.init),
        checkpoint=f"results/checkpoints/{RUN}/checkpoint.pt",
    script:
        "../scripts/train_projector.py"


for group in FUSED_GROUPS:

    rule:
        name:
            group.name
        input:
            **fused_inputs(group),
        output:
            projector=fused_outputs(group, "projector.pt"),
            curve=fused_outputs(group, "curve.tsv"),
            config=fused_outputs(group, "train_config.json"),
            val_curve=fused_outputs(group, "val_curve.tsv"),
            checkpoints=fused_outputs(group, "checkpoints.pt"),
        log:
            f"logs/train_fused/{group.name}.log",
        benchmark:
            f"results/timings/train_fused/{group.name}.tsv"
        conda:
            "../../envs/taxvlm.yaml"
        threads: SETTINGS.compute.train_threads
        resources:
            **gpu_job("train", lm=group.runs[0].lm, members=len(group.runs)),
        params:
            lm=lm_spec(group.runs[0].lm),
            encoder=config["encoders"][group.runs[0].encoder],
            training=training_config(
                config, group.runs[0].lm, group.runs[0].objective, group.runs[0].init
            ),
            init=group.runs[0].init,
            objective=group.runs[0].objective,
            memory_gib=fuse_memory_gib(config, group.runs[0].lm),
            members=[r.keys() for r in group.runs],
            checkpoints=[
                f"results/checkpoints/{r.path}/checkpoint.pt" for r in group.runs
            ],
        script:
            "../scripts/train_fused.py"
