"""The cost benchmark: training steps, generation, many edits, swaps and sizes, the engine."""
