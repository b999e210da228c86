"""Exploring a trained edit: strength, which layers matter, edit arithmetic, token-level drift, control vectors."""
