"""BitFit (only the existing biases train), as a registry entry."""
