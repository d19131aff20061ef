# Training length and learning rate chosen on the validation leaves (`snakemake tune`; not part of
# `all`): one projector per objective x init x candidate of config.tuning, trained by the same script
# as the grid's runs, then the choices and their report.

TUNING = config["tuning"]
TUNE_DIR = f"results/tuning/{TUNING['encoder']}/{TUNING['lm']}"
TUNE_RUN = "{objective}/{init}/{candidate}/seed{seed}"
TUNE_TARGETS = [
    {"objective": objective, "init": init}
    for objective in TUNING["objectives"]
    for init in TUNING["inits"]
]


rule tune_candidate:
    input:
        features=f"results/features/{TUNING['encoder']}.pt",
        train=lambda wc: f"results/conditions/{TUNING['condition']}/original/{TRAIN_TABLES[wc.objective]}",
        val=f"results/conditions/{TUNING['condition']}/original/val_leaf.tsv",
        concepts=f"{DATA}/concepts.tsv",
        lm_weights=weights_dir("lms", TUNING["lm"]),
        code=script_code("train_projector.py"),
    output:
        projector=f"{TUNE_DIR}/{TUNE_RUN}/projector.pt",
        val_curve=f"{TUNE_DIR}/{TUNE_RUN}/val_curve.tsv",
    log:
        f"logs/tune_candidate/{TUNING['encoder']}/{TUNING['lm']}/{TUNE_RUN}.log",
    benchmark:
        f"results/benchmarks/tune_candidate/{TUNING['encoder']}/{TUNING['lm']}/{TUNE_RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: config["compute"]["train_threads"]
    resources:
        **gpu_job("tune", lm=TUNING["lm"]),
    params:
        lm=lm_spec(TUNING["lm"]),
        encoder=config["encoders"][TUNING["encoder"]],
        training=lambda wc: tuning_training(wc.objective, wc.init, wc.candidate),
        checkpoint=f"results/checkpoints/tuning/{TUNING['encoder']}/{TUNING['lm']}/{TUNE_RUN}.pt",
    script:
        "../scripts/train_projector.py"


rule tune:
    input:
        curves=[
            f"{TUNE_DIR}/{target['objective']}/{target['init']}/{candidate_name(c)}/seed{TUNING['seed']}/val_curve.tsv"
            for target in TUNE_TARGETS
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
        targets=TUNE_TARGETS,
        candidates=TUNING["candidates"],
        setup={
            key: TUNING[key]
            for key in ("encoder", "lm", "condition", "seed", "epochs", "tolerance")
        },
    script:
        "../scripts/tune_summary.py"
