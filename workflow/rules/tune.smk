# Training length, learning rate and encoder chosen on the validation leaves (`snakemake tune`; not
# part of `all`): one projector per target (encoder x objective x init) x candidate of config.tuning,
# trained by the same script as the grid's runs, then the choices and their report.

TUNING = config["tuning"]
TUNE_RUN = (
    f"{{encoder}}/{TUNING['lm']}/{{objective}}/{{init}}/{{candidate}}/seed{{seed}}"
)
TUNE_PLAN = tuning_plan(TUNING["targets"], TUNING["candidates"])


rule tune_candidate:
    input:
        features=FEATURES,
        train=lambda wc: f"results/conditions/{TUNING['condition']}/original/{TRAIN_TABLES[wc.objective]}",
        val=f"results/conditions/{TUNING['condition']}/original/val_leaf.tsv",
        concepts=f"{DATA}/concepts.tsv",
        lm_weights=weights_dir("lms", TUNING["lm"]),
        code=script_code("train_projector.py"),
    output:
        projector=f"results/tuning/{TUNE_RUN}/projector.pt",
        val_curve=f"results/tuning/{TUNE_RUN}/val_curve.tsv",
    log:
        f"logs/tune_candidate/{TUNE_RUN}.log",
    benchmark:
        f"results/timings/tune_candidate/{TUNE_RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("tune", lm=TUNING["lm"]),
    params:
        lm=lm_spec(TUNING["lm"]),
        encoder=lambda wc: config["encoders"][wc.encoder],
        training=lambda wc: tuning_training(wc.objective, wc.init, wc.candidate),
        checkpoint=f"results/checkpoints/tuning/{TUNE_RUN}.pt",
    script:
        "../scripts/train_projector.py"


rule tune:
    input:
        curves=[
            f"results/tuning/{TUNE_RUN}/val_curve.tsv".format(
                **target, candidate=candidate_name(c), seed=TUNING["seed"]
            )
            for target, c in TUNE_PLAN
        ],
        code=script_code("tune.py"),
    output:
        table="results/tuning/tuning.tsv",
        markdown="results/tuning/tuning.md",
    log:
        "logs/tune.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        plan=TUNE_PLAN,
        setup={
            key: TUNING[key]
            for key in ("lm", "condition", "seed", "epochs", "tolerance")
        },
    script:
        "../scripts/tune.py"
