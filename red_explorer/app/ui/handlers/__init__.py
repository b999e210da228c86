"""Event handlers as plain functions: a Session and plain values in, plain values and figures out."""
