# Aggregation: tidy metrics, coherence, text-only LM probes, the text upper bound of every readout,
# statistics, figures, tables, report.


rule collect_metrics:
    input:
        results=[path for _, path in METRIC_SOURCES],
        pairs=f"{DATA}/pairs.tsv",
        code=script_code("collect_metrics.py"),
    output:
        metrics=f"{ANALYSIS}/metrics.tsv",
        headline=f"{ANALYSIS}/headline.tsv",
    log:
        "logs/collect_metrics.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        runs=[keys for keys, _ in METRIC_SOURCES],
    script:
        "../scripts/collect_metrics.py"


rule contrasts:
    input:
        results=[path for _, path in METRIC_SOURCES],
        upper_bounds=[path for _, path in UPPER_BOUND_SOURCES],
        val_curves=[f"{run_dir(run)}/val_curve.tsv" for run in RUNS],
        pairs=f"{DATA}/pairs.tsv",
        code=script_code("contrasts.py"),
    output:
        leaf_scores=f"{ANALYSIS}/leaf_scores.tsv",
        contrasts=f"{ANALYSIS}/contrasts.tsv",
        trained=f"{ANALYSIS}/trained_task.tsv",
        csv=report(
            f"{ANALYSIS}/tables/answer.csv",
            caption="../report/table_answer.rst",
            category="1. The answer",
        ),
        md=f"{ANALYSIS}/tables/answer.md",
        statement=report(
            f"{ANALYSIS}/answer.txt",
            caption="../report/answer.rst",
            category="1. The answer",
        ),
        figure=report(
            f"{ANALYSIS}/figures/answer.png",
            caption="../report/figure_answer.rst",
            category="1. The answer",
        ),
    log:
        "logs/contrasts.log",
    benchmark:
        "results/timings/contrasts.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    params:
        runs=[keys for keys, _ in METRIC_SOURCES],
        upper_bounds=[keys for keys, _ in UPPER_BOUND_SOURCES],
        trained=[run.keys() for run in RUNS],
        draws=config["analysis"]["bootstrap"]["draws"],
        seed=config["analysis"]["bootstrap"]["seed"],
    script:
        "../scripts/contrasts.py"


rule provenance:
    input:
        code=script_code("provenance.py"),
    output:
        f"{ANALYSIS}/provenance.json",
    log:
        "logs/provenance.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        fingerprint=CONFIG_FINGERPRINT,
        repo=workflow.basedir,
    script:
        "../scripts/provenance.py"


rule collect_dynamics:
    input:
        by_step=[f"{run_dir(run)}/predictions_by_step.tsv" for run in YESNO_RUNS],
        val_curves=[f"{run_dir(run)}/val_curve.tsv" for run in YESNO_RUNS],
        train=[
            f"results/conditions/{run.condition}/{run.shuffle}/train.tsv"
            for run in YESNO_RUNS
        ],
        pairs=f"{DATA}/pairs.tsv",
        coherence=f"{ANALYSIS}/coherence.tsv",
        code=script_code("collect_dynamics.py"),
    output:
        dynamics=f"{ANALYSIS}/dynamics.tsv",
        categories=f"{ANALYSIS}/dynamics_categories.tsv",
        correlations=f"{ANALYSIS}/dynamics_correlations.tsv",
        twin=f"{ANALYSIS}/dynamics_twin.tsv",
        statement=report(
            f"{ANALYSIS}/dynamics.txt",
            caption="../report/dynamics.rst",
            category="Dynamics",
        ),
    log:
        "logs/collect_dynamics.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        runs=[run.keys() for run in YESNO_RUNS],
    script:
        "../scripts/collect_dynamics.py"


rule coherence:
    input:
        features=expand(FEATURES, encoder=ENCODERS),
        images=f"{DATA}/images.tsv",
        pairs=f"{DATA}/pairs.tsv",
        shuffle_maps=[
            f"results/conditions/{first_condition(s)}/{s}/shuffle_map.tsv"
            for s in SHUFFLES
        ],
        metrics=f"{ANALYSIS}/metrics.tsv",
        code=script_code("coherence.py"),
    output:
        coherence=f"{ANALYSIS}/coherence.tsv",
        correlations=f"{ANALYSIS}/coherence_correlations.tsv",
    log:
        "logs/coherence.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        encoders=ENCODERS,
        shuffles=SHUFFLES,
    script:
        "../scripts/coherence.py"


rule textprobe:
    input:
        concepts=f"{DATA}/concepts.tsv",
        hypernyms=f"{DATA}/hypernyms.tsv",
        questions=f"{DATA}/questions.tsv",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("textprobe.py"),
    output:
        per_item=f"{ANALYSIS}/textprobe/{{lm}}/{{init}}_items.tsv",
        summary=f"{ANALYSIS}/textprobe/{{lm}}/{{init}}_summary.tsv",
    log:
        "logs/textprobe/{lm}_{init}.log",
    benchmark:
        "results/timings/textprobe/{lm}_{init}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("evaluate"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        probe=config["analysis"]["textprobe"],
    script:
        "../scripts/textprobe.py"


rule upper_bound:
    input:
        concepts=f"{DATA}/concepts.tsv",
        hypernyms=f"{DATA}/hypernyms.tsv",
        questions=f"{DATA}/questions.tsv",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("upper_bound.py"),
    output:
        UPPER_BOUND,
    log:
        "logs/upper_bound/{lm}_{init}.log",
    benchmark:
        "results/timings/upper_bound/{lm}_{init}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("evaluate"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        batch_size=config["evaluation"]["batch_size"],
    script:
        "../scripts/upper_bound.py"


rule combine_textprobe:
    input:
        summaries=expand(
            f"{ANALYSIS}/textprobe/{{lm}}/{{init}}_summary.tsv",
            lm=TEXTPROBE_LMS,
            init=["pretrained", "random"],
        ),
        code=script_code("combine_textprobe.py"),
    output:
        f"{ANALYSIS}/textprobe_summary.tsv",
    log:
        "logs/combine_textprobe.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/combine_textprobe.py"


rule mixed_effects:
    input:
        predictions=[f"{run_dir(run)}/predictions.tsv" for run in YESNO_RUNS],
        code=script_code("mixed_effects.py"),
    output:
        summary=report(
            f"{ANALYSIS}/mixed_effects.txt",
            caption="../report/mixed_effects.rst",
            category="Mixed-effects model",
        ),
        coefficients=f"{ANALYSIS}/mixed_effects.tsv",
    log:
        "logs/mixed_effects.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        runs=[run.keys() for run in YESNO_RUNS],
    script:
        "../scripts/mixed_effects.py"


rule figures:
    input:
        metrics=f"{ANALYSIS}/metrics.tsv",
        coherence=f"{ANALYSIS}/coherence.tsv",
        textprobe=TEXTPROBE_SUMMARY,
        pairs=f"{DATA}/pairs.tsv",
        dynamics=f"{ANALYSIS}/dynamics.tsv",
        code=script_code("figures.py"),
    output:
        **{
            name: report(
                f"{ANALYSIS}/figures/{name}.png",
                caption=f"../report/figure_{name}.rst",
                category="Figures",
            )
            for name in FIGURE_NAMES
        },
    log:
        "logs/figures.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/figures.py"


rule tables:
    input:
        metrics=f"{ANALYSIS}/metrics.tsv",
        coherence=f"{ANALYSIS}/coherence.tsv",
        textprobe=TEXTPROBE_SUMMARY,
        dynamics=f"{ANALYSIS}/dynamics.tsv",
        dynamics_twin=f"{ANALYSIS}/dynamics_twin.tsv",
        code=script_code("tables.py"),
    output:
        **{
            f"{name}_csv": report(
                f"{ANALYSIS}/tables/{name}.csv",
                caption=f"../report/table_{name}.rst",
                category="Tables",
            )
            for name in TABLE_NAMES
        },
        **{f"{name}_md": f"{ANALYSIS}/tables/{name}.md" for name in TABLE_NAMES},
    log:
        "logs/tables.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/tables.py"


rule plot_taxonomy:
    input:
        pairs=f"{DATA}/pairs.tsv",
        code=script_code("plot_taxonomy.py"),
    output:
        report(
            f"{DATA}/taxonomy.png",
            caption="../report/taxonomy.rst",
            category="Data",
        ),
    log:
        "logs/plot_taxonomy.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/plot_taxonomy.py"
