"""The engine: the training loop, evaluation, experiments, ablations, generation, distributed runs."""
