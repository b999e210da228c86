"""Full fine-tuning, as a registry entry."""
