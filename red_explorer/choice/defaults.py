"""The measured defaults: the sweeps that set every method's default learning rate, and their step count."""

from __future__ import annotations

# `red-explorer sweep` over every method that applies to the real default model (SmolLM2-135M, CPU) on the
# bundled pirate_style sample; each method's default_learning_rate is its best rate there
# (tests/test_method_defaults.py keeps them equal). See the README in that folder for the exact command.
MEASURED_SWEEP = "benchmarks/method_choice/pirate_style"
# The same run above the grid for the methods that were best at its top (LoRA, DoRA): a default is the best rate
# over both.
ABOVE_THE_GRID = "benchmarks/method_choice/pirate_style/above_the_grid"

# BitFit refuses Llama-family models (they have no biases), and in the encoder sweep on the public
# rotten_tomatoes task (MiniLM, classification) none of its rates left chance level: it keeps 1e-3.
ENCODER_SWEEP = "benchmarks/method_choice/rotten_tomatoes"

# The run of every point of the measured sweep, the budget the default rates are best for: the default run
# length and batch size of the app's Train and Ablations tabs and of the CLI (`--max-steps` of `sweep`).
DEFAULT_MAX_STEPS = 30
DEFAULT_BATCH_SIZE = 8
