# Layer-wise probing (Tao et al., docs/protocol.md §15): the hidden states of every LM layer of each selected
# yes/no run, captured once per run in the evaluation's forward, and linear probes per layer, position
# and task in one fit/collect job (taxvlm.probing.states, taxvlm.analysis.probing).

from taxvlm.probing.selection import name_suffix, probe_runs

PROBE = "results/probe"
PROBE_RUNS = probe_runs(config["probe"], YESNO_RUNS)
PROBE_FIT = {
    "runs": f"{ANALYSIS}/probe_runs.tsv",
    "summary": f"{ANALYSIS}/probe.tsv",
    "skipped": f"{ANALYSIS}/probe_skipped.tsv",
    "table_md": f"{ANALYSIS}/tables/probe_best_layer.md",
}
PROBE_OUTPUTS = (
    [
        *PROBE_FIT.values(),
        f"{ANALYSIS}/figures/probe.png",
        f"{ANALYSIS}/tables/probe_best_layer.csv",
        f"{ANALYSIS}/probe_statement.md",
    ]
    if PROBE_RUNS
    else []
)


rule probe_states:
    input:
        **TEST_TABLES,
        train=f"{CONDITION_DIR}/train.tsv",
        features=FEATURES,
        projector=f"{YESNO_RUN_DIR}/projector.pt",
        train_config=f"{YESNO_RUN_DIR}/train_config.json",
        predictions=f"{YESNO_RUN_DIR}/predictions.tsv",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("probe_states.py"),
    output:
        (
            directory(f"{PROBE}/{YESNO_RUN}/states")
            if SETTINGS.probe.keep_states
            else temp(directory(f"{PROBE}/{YESNO_RUN}/states"))
        ),
    log:
        f"logs/probe_states/{YESNO_RUN}.log",
    benchmark:
        f"results/timings/probe_states/{YESNO_RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("probe"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        settings={
            "batch_size": config["evaluation"]["batch_size"],
            "max_train_rows": config["probe"]["max_train_rows"],
            "max_test_rows": config["probe"]["max_test_rows"],
            "seed": config["probe"]["seed"],
            "margin_tolerance": config["probe"]["margin_tolerance"],
            "name_suffix": name_suffix(config["questions"]["template"]),
        },
    script:
        "../scripts/probe_states.py"


rule probe_fit:
    input:
        states=[f"{PROBE}/{run.path}/states" for run in PROBE_RUNS],
        pairs=f"{DATA}/pairs.tsv",
        code=script_code("probe_fit.py"),
    output:
        **PROBE_FIT,
        figure=report(
            f"{ANALYSIS}/figures/probe.png",
            caption="../report/figure_probe.rst",
            category="Probing",
        ),
        table_csv=report(
            f"{ANALYSIS}/tables/probe_best_layer.csv",
            caption="../report/table_probe_best_layer.rst",
            category="Probing",
        ),
        statement=report(
            f"{ANALYSIS}/probe_statement.md",
            caption="../report/probe_statement.rst",
            category="Probing",
        ),
    log:
        "logs/probe_fit.log",
    benchmark:
        "results/timings/probe_fit.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.probe.threads
    params:
        runs=[run.keys() for run in PROBE_RUNS],
        settings={
            key: config["probe"][key]
            for key in ("positions", "tasks", "folds", "Cs", "max_iter", "seed")
        },
    script:
        "../scripts/probe_fit.py"
