"""TARE: a per-token top-k mix of diagonal editors (config, edit, routing, saving)."""
