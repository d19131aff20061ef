"""The names of the report's figures and tables, in one place that imports nothing heavy: the Snakefile
reads them at every parse to name the `figures` / `tables` outputs, and `FIGURES` / `TABLES` are keyed
by them (tests/test_analysis_figures.py holds the registries to these tuples)."""

FIGURE_NAMES = (
    "deprivation",
    "shuffles",
    "encoders",
    "lms",
    "coherence",
    "coherence_shuffles",
    "depth",
    "per_category",
    "textprobe",
    "naming",
    "dynamics",
)
TABLE_NAMES = (
    "headline",
    "per_category",
    "coherence",
    "coherence_correlations",
    "textprobe",
    "textprobe_correlations",
    "naming",
    "dynamics",
)
