"""Training: the projector learns through a frozen LM on cached image features, checkpointed and resumable.

- `objective`: the training rows of each objective and their loss, one LM pass for a fused step;
- `validation`: the learning criterion, scored on the validation table while a run trains;
- `resume`: the resume state a run writes every `checkpoint_every` steps and restarts from;
- `kept_points`: the projector states kept along training for the evaluation to score;
- `memory`: the activation estimate that sizes fused sub-stacks;
- `loop`: the loop that steps one run or a fused group of runs and writes their run folders.
"""
