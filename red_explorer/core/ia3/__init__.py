"""(IA)³ through PEFT, as a registry entry."""
