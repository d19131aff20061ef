# Compositional hard negatives and CE-CLIP's contrastive stage (config.compositional; config/README.md):
# hard negatives of the dataset's captions; the grid's trained VLMs, open_clip models and the
# contrastive models (pipeline and faithful modes, over the ablation grid) scored on them; the
# compositional benchmarks (downloaded by pinned URL + sha256) scored by the open_clip models, the
# faithful models and the grid's VLMs (their encoder run over each benchmark's images).

CONTRASTIVE = COMP_SECTION["contrastive"]
CLIPS = sorted(COMP_SECTION["open_clip"])
BENCHMARKS = sorted(COMP_SECTION["benchmarks"])
FAITHFUL = CONTRASTIVE["faithful"]
FAITHFUL_DATA = (
    f"{COMP}/coco" if FAITHFUL.get("captions", "dataset") == "coco" else None
)


# Run by Snakemake itself (see the Snakefile's localrules): downloads, and light table work.
localrules:
    compositional_wordnet,
    compositional_negatives,
    compositional_coco,
    compositional_coco_negatives,
    compositional_fetch_benchmark,
    compositional_fetch_coco,
    compositional_benchmark_items,
    compositional_benchmark_images,
    compositional_collect,
    compositional_report,


wildcard_constraints:
    ablation="itc|hn|imc|cmr|all",
    clip=_alternation(CLIPS),
    benchmark=_alternation(BENCHMARKS),


COMP_SCORED = compositional_scored()
COMP_CURVES = compositional_curves(COMP_SCORED)
BENCHMARK_SCORED = compositional_benchmark_scored()


rule compositional_wordnet:
    input:
        sdist=f"resources/downloads/{COMP_SECTION['wordnet_asset']}",
        code=script_code("install_wordnet.py"),
    output:
        directory("resources/compositional/nltk_data"),
    log:
        "logs/compositional/install_wordnet.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/install_wordnet.py"


rule compositional_negatives:
    input:
        captions=f"{DATA}/captions.tsv",
        concepts=f"{DATA}/concepts.tsv",
        pairs=f"{DATA}/pairs.tsv",
        images=f"{DATA}/images.tsv",
        nltk_data="resources/compositional/nltk_data",
        code=script_code("compositional_negatives.py"),
    output:
        f"{COMP}/negatives.tsv",
    log:
        "logs/compositional/negatives.log",
    benchmark:
        "results/timings/compositional/negatives.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    params:
        seed=COMP_SECTION["seed"],
    script:
        "../scripts/compositional_negatives.py"


rule compositional_score_vlm:
    input:
        negatives=f"{COMP}/negatives.tsv",
        images=f"{DATA}/images.tsv",
        features=FEATURES,
        projector=f"{RUN_DIR}/projector.pt",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("compositional_score_vlm.py"),
    output:
        f"{COMP}/scored/vlm/{RUN}.tsv",
    log:
        f"logs/compositional/score_vlm/{RUN}.log",
    benchmark:
        f"results/timings/compositional/score_vlm/{RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("compositional"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        batch_size=COMP_SECTION["batch_size"],
    script:
        "../scripts/compositional_score_vlm.py"


rule compositional_text_features:
    input:
        negatives=f"{COMP}/negatives.tsv",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("compositional_text_features.py"),
    output:
        f"{COMP}/text_features/{{lm}}/{{init}}.pt",
    log:
        "logs/compositional/text_features/{lm}/{init}.log",
    benchmark:
        "results/timings/compositional/text_features/{lm}/{init}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("compositional"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        types=COMP_SECTION["types"],
    script:
        "../scripts/compositional_text_features.py"


rule compositional_pipeline:
    input:
        negatives=f"{COMP}/negatives.tsv",
        images=f"{DATA}/images.tsv",
        features=FEATURES,
        projector=f"{RUN_DIR}/projector.pt",
        text_features=f"{COMP}/text_features/{{lm}}/{{init}}.pt",
        code=script_code("compositional_pipeline.py"),
    output:
        model=f"{COMP}/pipeline/{RUN}/{{ablation}}/model.pt",
        curve=f"{COMP}/pipeline/{RUN}/{{ablation}}/curve.tsv",
        scored=f"{COMP}/pipeline/{RUN}/{{ablation}}/scored.tsv",
    log:
        f"logs/compositional/pipeline/{RUN}/{{ablation}}.log",
    benchmark:
        f"results/timings/compositional/pipeline/{RUN}/{{ablation}}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    params:
        section=COMP_SECTION,
    script:
        "../scripts/compositional_pipeline.py"


rule compositional_coco:
    input:
        annotations="resources/compositional/coco_annotations.zip",
        code=script_code("compositional_coco.py"),
    output:
        images=f"{COMP}/coco/images.tsv",
        captions=f"{COMP}/coco/captions.tsv",
    log:
        "logs/compositional/coco.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        member=FAITHFUL.get("coco_member"),
        image_root=FAITHFUL.get("coco_image_root"),
    script:
        "../scripts/compositional_coco.py"


rule compositional_coco_negatives:
    input:
        captions=f"{COMP}/coco/captions.tsv",
        nltk_data="resources/compositional/nltk_data",
        code=script_code("compositional_negatives.py"),
    output:
        f"{COMP}/coco/negatives.tsv",
    log:
        "logs/compositional/coco_negatives.log",
    benchmark:
        "results/timings/compositional/coco_negatives.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    params:
        seed=COMP_SECTION["seed"],
    script:
        "../scripts/compositional_negatives.py"


rule compositional_faithful:
    input:
        negatives=f"{FAITHFUL_DATA or COMP}/negatives.tsv",
        images=f"{FAITHFUL_DATA}/images.tsv" if FAITHFUL_DATA else f"{DATA}/images.tsv",
        code=script_code("compositional_faithful.py"),
    output:
        model=f"{COMP}/faithful/{{clip}}/{{ablation}}/model.pt",
        curve=f"{COMP}/faithful/{{clip}}/{{ablation}}/curve.tsv",
        scored=f"{COMP}/faithful/{{clip}}/{{ablation}}/scored.tsv",
    log:
        "logs/compositional/faithful/{clip}/{ablation}.log",
    benchmark:
        "results/timings/compositional/faithful/{clip}/{ablation}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("compositional"),
    params:
        spec=lambda wc: COMP_SECTION["open_clip"][wc.clip],
        section=COMP_SECTION,
    script:
        "../scripts/compositional_faithful.py"


rule compositional_score_open_clip:
    input:
        negatives=f"{COMP}/negatives.tsv",
        images=f"{DATA}/images.tsv",
        code=script_code("compositional_score_open_clip.py"),
    output:
        f"{COMP}/scored/open_clip/{{clip}}.tsv",
    log:
        "logs/compositional/score_open_clip/{clip}.log",
    benchmark:
        "results/timings/compositional/score_open_clip/{clip}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("compositional"),
    params:
        spec=lambda wc: COMP_SECTION["open_clip"][wc.clip],
        image_root=".",
    script:
        "../scripts/compositional_score_open_clip.py"


rule compositional_fetch_benchmark:
    input:
        code=script_code("fetch_asset.py"),
    output:
        "resources/compositional/benchmarks/{benchmark}/{bfile}.json",
    log:
        "logs/compositional/fetch/{benchmark}/{bfile}.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        spec=lambda wc: {
            "source": "url",
            **COMP_SECTION["benchmarks"][wc.benchmark]["files"][wc.bfile],
        },
    script:
        "../scripts/fetch_asset.py"


rule compositional_fetch_coco:
    input:
        code=script_code("fetch_asset.py"),
    output:
        "resources/compositional/coco_annotations.zip",
    log:
        "logs/compositional/fetch/coco_annotations.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        spec={"source": "url", **FAITHFUL.get("coco_annotations", {})},
    script:
        "../scripts/fetch_asset.py"


rule compositional_benchmark_items:
    input:
        files=lambda wc: [
            f"resources/compositional/benchmarks/{wc.benchmark}/{key}.json"
            for key in COMP_SECTION["benchmarks"][wc.benchmark]["files"]
        ],
        nltk_data="resources/compositional/nltk_data",
        code=script_code("compositional_benchmark_items.py"),
    output:
        f"{COMP}/benchmarks/{{benchmark}}/items.tsv",
    log:
        "logs/compositional/benchmark_items/{benchmark}.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        spec=lambda wc: COMP_SECTION["benchmarks"][wc.benchmark],
        seed=COMP_SECTION["seed"],
    script:
        "../scripts/compositional_benchmark_items.py"


rule compositional_benchmark_open_clip:
    input:
        bench_items=f"{COMP}/benchmarks/{{benchmark}}/items.tsv",
        code=script_code("compositional_score_open_clip.py"),
    output:
        f"{COMP}/benchmarks/{{benchmark}}/open_clip/{{clip}}.tsv",
    log:
        "logs/compositional/benchmark_open_clip/{benchmark}/{clip}.log",
    benchmark:
        "results/timings/compositional/benchmark_open_clip/{benchmark}/{clip}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("compositional"),
    params:
        spec=lambda wc: COMP_SECTION["open_clip"][wc.clip],
        image_root=lambda wc: COMP_SECTION["benchmarks"][wc.benchmark]["image_root"],
    script:
        "../scripts/compositional_score_open_clip.py"


rule compositional_benchmark_images:
    input:
        bench_items=f"{COMP}/benchmarks/{{benchmark}}/items.tsv",
        code=script_code("compositional_benchmark_images.py"),
    output:
        images=f"{COMP}/benchmarks/{{benchmark}}/images.tsv",
        crops=directory(f"{COMP}/benchmarks/{{benchmark}}/crops"),
    log:
        "logs/compositional/benchmark_images/{benchmark}.log",
    benchmark:
        "results/timings/compositional/benchmark_images/{benchmark}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    params:
        image_root=lambda wc: COMP_SECTION["benchmarks"][wc.benchmark]["image_root"],
    script:
        "../scripts/compositional_benchmark_images.py"


rule compositional_benchmark_features:
    input:
        images=f"{COMP}/benchmarks/{{benchmark}}/images.tsv",
        weights=lambda wc: weights_dir("encoders", wc.encoder),
        code=script_code("extract_features.py"),
    output:
        f"{COMP}/benchmarks/{{benchmark}}/features/{{encoder}}.pt",
    log:
        "logs/compositional/benchmark_features/{benchmark}/{encoder}.log",
    benchmark:
        "results/timings/compositional/benchmark_features/{benchmark}/{encoder}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.feature_threads
    resources:
        **gpu_job("compositional"),
    params:
        spec=lambda wc: config["encoders"][wc.encoder],
        batch_size=config["compute"]["feature_batch_size"],
    script:
        "../scripts/extract_features.py"


rule compositional_benchmark_vlm:
    input:
        bench_items=f"{COMP}/benchmarks/{{benchmark}}/items.tsv",
        features=f"{COMP}/benchmarks/{{benchmark}}/features/{{encoder}}.pt",
        projector=f"{RUN_DIR}/projector.pt",
        lm_weights=lambda wc: weights_dir("lms", wc.lm),
        code=script_code("compositional_score_vlm.py"),
    output:
        f"{COMP}/benchmarks/{{benchmark}}/vlm/{RUN}.tsv",
    log:
        f"logs/compositional/benchmark_vlm/{{benchmark}}/{RUN}.log",
    benchmark:
        f"results/timings/compositional/benchmark_vlm/{{benchmark}}/{RUN}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("compositional"),
    params:
        lm=lambda wc: lm_spec(wc.lm),
        batch_size=COMP_SECTION["batch_size"],
    script:
        "../scripts/compositional_score_vlm.py"


rule compositional_benchmark_faithful:
    input:
        bench_items=f"{COMP}/benchmarks/{{benchmark}}/items.tsv",
        model=f"{COMP}/faithful/{FAITHFUL.get('model', 'none')}/{{ablation}}/model.pt",
        code=script_code("compositional_score_open_clip.py"),
    output:
        f"{COMP}/benchmarks/{{benchmark}}/faithful/{{ablation}}.tsv",
    log:
        "logs/compositional/benchmark_faithful/{benchmark}/{ablation}.log",
    benchmark:
        "results/timings/compositional/benchmark_faithful/{benchmark}/{ablation}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    threads: SETTINGS.compute.train_threads
    resources:
        **gpu_job("compositional"),
    params:
        spec=COMP_SECTION["open_clip"].get(FAITHFUL.get("model"), {}),
        image_root=lambda wc: COMP_SECTION["benchmarks"][wc.benchmark]["image_root"],
    script:
        "../scripts/compositional_score_open_clip.py"


rule compositional_collect:
    input:
        scored=list(COMP_SCORED.values()),
        curves=list(COMP_CURVES.values()),
        benchmarks=list(BENCHMARK_SCORED.values()),
        code=script_code("compositional_collect.py"),
    output:
        accuracy=f"{COMP}/accuracy.tsv",
        thetas=f"{COMP}/thetas.tsv",
        benchmarks=f"{COMP}/benchmark_accuracy.tsv",
    log:
        "logs/compositional/collect.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        scored=list(COMP_SCORED),
        curves=list(COMP_CURVES),
        benchmarks=list(BENCHMARK_SCORED),
    script:
        "../scripts/compositional_collect.py"


rule compositional_report:
    input:
        accuracy=f"{COMP}/accuracy.tsv",
        thetas=f"{COMP}/thetas.tsv",
        benchmarks=f"{COMP}/benchmark_accuracy.tsv",
        code=script_code("compositional_report.py"),
    output:
        accuracy=report(
            f"{ANALYSIS}/figures/compositional_accuracy.png",
            caption="../report/figure_compositional.rst",
            category="Compositional",
        ),
        taxonomic=report(
            f"{ANALYSIS}/figures/compositional_taxonomic.png",
            caption="../report/figure_compositional_taxonomic.rst",
            category="Compositional",
        ),
        thetas=report(
            f"{ANALYSIS}/figures/compositional_thetas.png",
            caption="../report/figure_compositional_thetas.rst",
            category="Compositional",
        ),
        table_csv=f"{ANALYSIS}/tables/compositional_accuracy.csv",
        table_md=report(
            f"{ANALYSIS}/tables/compositional_accuracy.md",
            caption="../report/table_compositional.rst",
            category="Compositional",
        ),
        bench_csv=f"{ANALYSIS}/tables/compositional_benchmarks.csv",
        bench_md=f"{ANALYSIS}/tables/compositional_benchmarks.md",
    log:
        "logs/compositional/report.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/compositional_report.py"
