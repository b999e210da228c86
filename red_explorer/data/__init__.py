"""Data: file formats, tables and splits, tokenisation, batching."""
