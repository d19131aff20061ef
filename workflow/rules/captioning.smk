# Captioning evaluation of caption-trained projectors (LiMBeR): greedy captions of the test images,
# CIDEr-D and BLEU-4 per run, their seed means with t-based CIs, and a figure of examples.

CAPTION_RUNS = [run for run in RUNS if run.objective == "caption"]
# The reference captions of a condition's test images: image_id, caption (several rows per image allowed).
CAPTION_REFERENCES = f"{CONDITION_DIR}/test_captions.tsv"
CAPTION_EXAMPLE_IMAGES = 6
# What `rule all` asks for when the grid has caption runs.
CAPTION_OUTPUTS = (
    [
        f"{ANALYSIS}/caption_scores.tsv",
        f"{ANALYSIS}/tables/captioning.csv",
        f"{ANALYSIS}/figures/captions.png",
    ]
    if CAPTION_RUNS
    else []
)


# The runs whose captions the example figure shows: per (encoder, lm, init), the first run in the grid's
# order (condition, shuffle, seed), so each model configuration appears once and the choice is stable.
CAPTION_EXAMPLES = sorted(
    {(r.encoder, r.lm, r.init): r for r in sorted(CAPTION_RUNS, reverse=True)}.values()
)


rule caption_decode:
    input:
        features=FEATURES,
        projector=f"{RUN_DIR}/projector.pt",
        references=CAPTION_REFERENCES,
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("caption_decode.py"),
    output:
        captions=f"{RUN_DIR}/captions.tsv",
        scores=f"{RUN_DIR}/caption_scores.tsv",
    log:
        f"logs/caption_decode/{RUN}.log",
    benchmark:
        f"results/timings/caption_decode/{RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("decode"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        run=lambda wc: dict(wc.items()),
        max_new_tokens=config["evaluation"]["caption_max_new_tokens"],
        batch_size=config["evaluation"]["batch_size"],
    script:
        "../scripts/caption_decode.py"


rule caption_collect:
    input:
        scores=[f"{run_dir(run)}/caption_scores.tsv" for run in CAPTION_RUNS],
        code=script_code("caption_collect.py"),
    output:
        scores=f"{ANALYSIS}/caption_scores.tsv",
        csv=report(
            f"{ANALYSIS}/tables/captioning.csv",
            caption="../report/table_captioning.rst",
            category="Tables",
        ),
        md=f"{ANALYSIS}/tables/captioning.md",
    log:
        "logs/caption_collect.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/caption_collect.py"


rule caption_figure:
    input:
        captions=[f"{run_dir(run)}/captions.tsv" for run in CAPTION_EXAMPLES],
        images=f"{DATA}/images.tsv",
        code=script_code("caption_figure.py"),
    output:
        report(
            f"{ANALYSIS}/figures/captions.png",
            caption="../report/figure_captions.rst",
            category="Figures",
        ),
    log:
        "logs/caption_figure.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        runs=[run.keys() for run in CAPTION_EXAMPLES],
        n_images=CAPTION_EXAMPLE_IMAGES,
    script:
        "../scripts/caption_figure.py"
