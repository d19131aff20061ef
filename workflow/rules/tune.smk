# Training length and learning rate chosen on the validation leaf questions (`snakemake tune`; not part
# of `all`): one projector per candidate of config.tuning, then the choice and its report.

TUNING = config["tuning"]
TUNE_DIR = f"results/tuning/{TUNING['encoder']}/{TUNING['lm']}"
TUNE_CONDITION = f"results/conditions/{TUNING['condition']}/original"


rule tune_candidate:
    input:
        features=f"results/features/{TUNING['encoder']}.pt",
        train=f"{TUNE_CONDITION}/train.tsv",
        val=f"{TUNE_CONDITION}/val_leaf.tsv",
        lm_weights=weights_dir("lms", TUNING["lm"]),
        code=script_code("tune_candidate.py"),
    output:
        projector=f"{TUNE_DIR}/{{candidate}}/projector.pt",
        val_curve=f"{TUNE_DIR}/{{candidate}}/val_curve.tsv",
    log:
        f"logs/tune_candidate/{TUNING['encoder']}/{TUNING['lm']}/{{candidate}}.log",
    benchmark:
        f"results/benchmarks/tune_candidate/{TUNING['encoder']}/{TUNING['lm']}/{{candidate}}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: config["compute"]["train_threads"]
    resources:
        gpu=GPU,
    params:
        lm=lm_spec(TUNING["lm"]),
        encoder=config["encoders"][TUNING["encoder"]],
        training=lambda wc: tuning_training(wc.candidate),
        seed=TUNING["seed"],
        checkpoint=f"results/checkpoints/tuning/{TUNING['encoder']}/{TUNING['lm']}/{{candidate}}.pt",
    script:
        "../scripts/tune_candidate.py"


rule tune:
    input:
        curves=[
            f"{TUNE_DIR}/{candidate_name(c)}/val_curve.tsv"
            for c in TUNING["candidates"]
        ],
        code=script_code("tune_summary.py"),
    output:
        table=f"{TUNE_DIR}/tuning.tsv",
        markdown=f"{TUNE_DIR}/tuning.md",
    log:
        "logs/tune.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        candidates=TUNING["candidates"],
        setup={
            key: TUNING[key]
            for key in ("encoder", "lm", "condition", "seed", "epochs", "tolerance")
        },
    script:
        "../scripts/tune_summary.py"
