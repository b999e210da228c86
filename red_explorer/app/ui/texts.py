"""Short explanations that several tabs show (one wording everywhere)."""

TARE_SENTENCE = (
    "**TARE** edits each token with its own mix of a few diagonal editors (each a RED-like scale and bias), "
    "chosen per token by a small learned selector."
)
FULL_SENTENCE = (
    "**Full fine-tuning** trains every weight of the model: each run keeps a whole model on disk (the size of "
    "the base model's weights, against your disk quota), loaded only when used."
)
RED_EXPLANATION = (
    "**RED** learns two vectors per layer, a scale and a bias, and edits what leaves each FFN block: "
    "h' = scale ⊙ h + bias. The weights stay frozen, and the edit folds into them after training."
)
TARE_EXPLANATION = (
    "**TARE** (Token-Aware Representation Editing) keeps a small pool of such editors after each FFN, and a light "
    "selector scores them for every token and mixes only the top few. So each token gets its own edit, at near-zero "
    "inference cost and with no rank or scaling to tune."
)
MAX_STEPS_LABEL = "Max steps (0 = train for the epochs; more steps than one epoch repeat the data)"
EPOCHS_LABEL = "Epochs (used when max steps is 0)"
TIMING_NOTE = (
    "*set-up*: the training copy of the base (made for the first job, reused after), attaching the method and "
    "the first validation pass · "
    "*s/step*: median time of an optimizer step after the first (the steady state) · "
    "*train time*: the training loop, validation passes included. Peak memory is shown on a GPU only: on a "
    "CPU the process's memory is shared by everything in it, so one run's share cannot be measured."
)
