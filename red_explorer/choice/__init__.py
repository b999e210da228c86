"""Choosing a method: learning-rate sweeps, forgetting on general text, the cost of a run, and the method card."""
