"""LN tuning (the norm layers train) through PEFT, as a registry entry."""
