"""Short explanations that several tabs show (one wording everywhere)."""

TARE_SENTENCE = (
    "**TARE** edits each token with its own mix of a few diagonal editors (each a RED-like scale and bias), "
    "chosen per token by a small learned selector."
)
MAX_STEPS_LABEL = "Max steps (0 = train for the epochs; more steps than one epoch repeat the data)"
EPOCHS_LABEL = "Epochs (used when max steps is 0)"
TIMING_NOTE = (
    "*set-up*: copying the base model, attaching the method and the first validation pass · "
    "*s/step*: median time of an optimizer step after the first (the steady state) · "
    "*train time*: the training loop, validation passes included. Peak memory is shown on a GPU only: on a "
    "CPU the process's memory is shared by everything in it, so one run's share cannot be measured."
)
