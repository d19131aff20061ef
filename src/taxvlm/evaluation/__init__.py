"""Evaluation of trained projectors: the readouts (forced-choice yes/no, naming by likelihood, captioning),
the scoring they share with training's validation, the decision rules, and loading a trained run."""
