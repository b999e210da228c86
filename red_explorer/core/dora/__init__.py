"""DoRA (weight-decomposed LoRA) through PEFT, as a registry entry."""
