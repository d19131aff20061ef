"""taxvlm: cross-modal taxonomic generalisation of frozen (vision-)language models.

Run `snakemake --cores all` for the embedded default preset (config/config.yaml). A preset stands
alone: `--configfile other.yaml` runs that file instead of the default (what it leaves out is the
schema's default), and further files after it are deep-merged over it. Under `--directory DIR`
without `--configfile`, DIR/config/config.yaml is the preset (`snakemake --directory .test` runs
the tiny CI configuration).
"""

from snakemake.utils import min_version

min_version("9.0")


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    encoder=_alternation(config["encoders"]),
    lm=_alternation(config["lms"]),
    family="encoders|lms",
    name=_alternation([*config["encoders"], *config["lms"]]),
    init="pretrained|random",
    condition=r"none|full|random\d+(pair)?|systematic\d+",
    shuffle="original|across|within",
    objective=_alternation(OBJECTIVES),
    seed=r"\d+",
    asset=_alternation(asset_entries(config["assets"])),


include: "workflow/rules/assets.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/captioning.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/probing.smk"
include: "workflow/rules/tune.smk"


# A disabled stage costs nothing: its rules are not even read.
if config["compositional"]["enabled"]:

    include: "workflow/rules/compositional.smk"


# Run by Snakemake itself, never submitted to a cluster: downloads (compute nodes often have no
# internet), data building, and light aggregation of results; targets without an action.
localrules:
    all,
    compositional,
    fetch_asset,
    install_wordnet,
    extract_tuxpaint,
    extract_things,
    convert_weights,
    prefetch_model,
    build_dataset,
    build_questions,
    materialize_condition,
    collect_metrics,
    provenance,
    collect_dynamics,
    coherence,
    combine_textprobe,
    figures,
    tables,
    plot_taxonomy,
    caption_collect,
    caption_figure,
    tune,


rule all:
    default_target: True
    input:
        final_outputs(),
        CAPTION_OUTPUTS,
        compositional_outputs(),
        PROBE_OUTPUTS,


# The compositional stage's results (config.compositional.enabled; nothing when disabled).
rule compositional:
    input:
        compositional_outputs(),


onsuccess:
    if unpinned_report(config["assets"]):
        print(unpinned_report(config["assets"]), file=sys.stderr)


onerror:
    if unpinned_report(config["assets"]):
        print(unpinned_report(config["assets"]), file=sys.stderr)
