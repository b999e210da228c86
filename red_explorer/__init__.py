"""RED Explorer: representation editing (RED) for Hugging Face transformers."""

__version__ = "0.1.0"
