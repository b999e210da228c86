"""Runs are edits, not models: each user's trained runs kept as small files in a store on disk."""
