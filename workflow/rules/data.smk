# Experimental design: concept table, image split, questions, deprivation conditions, shuffles.


rule build_dataset:
    input:
        unpack(dataset_inputs),
        code=script_code("build_dataset.py"),
    output:
        concepts=f"{DATA}/concepts.tsv",
        pairs=f"{DATA}/pairs.tsv",
        hypernyms=f"{DATA}/hypernyms.tsv",
        images=f"{DATA}/images.tsv",
        captions=f"{DATA}/captions.tsv",
        summary=f"{DATA}/summary.json",
    log:
        "logs/build_dataset.log",
    benchmark:
        "results/timings/build_dataset.tsv"
    conda:
        "../../envs/taxvlm.yaml"
    params:
        dataset=config["dataset"],
        split=config["split"],
    script:
        "../scripts/build_dataset.py"


rule build_questions:
    input:
        concepts=f"{DATA}/concepts.tsv",
        pairs=f"{DATA}/pairs.tsv",
        hypernyms=f"{DATA}/hypernyms.tsv",
        code=script_code("build_questions.py"),
    output:
        f"{DATA}/questions.tsv",
    log:
        "logs/build_questions.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        questions=config["questions"],
    script:
        "../scripts/build_questions.py"


rule materialize_condition:
    input:
        concepts=f"{DATA}/concepts.tsv",
        pairs=f"{DATA}/pairs.tsv",
        hypernyms=f"{DATA}/hypernyms.tsv",
        images=f"{DATA}/images.tsv",
        captions=f"{DATA}/captions.tsv",
        questions=f"{DATA}/questions.tsv",
        code=script_code("materialize_condition.py"),
    output:
        train=f"{CONDITION_DIR}/train.tsv",
        train_captions=f"{CONDITION_DIR}/train_captions.tsv",
        test_captions=f"{CONDITION_DIR}/test_captions.tsv",
        seen=f"{CONDITION_DIR}/test_seen.tsv",
        unseen=f"{CONDITION_DIR}/test_unseen.tsv",
        leaf=f"{CONDITION_DIR}/test_leaf.tsv",
        null=f"{CONDITION_DIR}/test_null.tsv",
        val_leaf=f"{CONDITION_DIR}/val_leaf.tsv",
        shuffle_map=f"{CONDITION_DIR}/shuffle_map.tsv",
        summary=f"{CONDITION_DIR}/summary.json",
    log:
        "logs/materialize_condition/{condition}_{shuffle}.log",
    conda:
        "../../envs/taxvlm.yaml"
    params:
        conditions=config["conditions"],
        shuffles=config["shuffles"],
    script:
        "../scripts/materialize_condition.py"
