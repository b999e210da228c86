"""LoRA through PEFT, as a registry entry."""
