"""RED: h' = scale ⊙ h + bias on chosen module outputs (config, edit, merge, edit bank, saving)."""
