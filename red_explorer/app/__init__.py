"""The web app: the per-user workbench, shared model registry, plots, archives, and the Gradio UI (ui/)."""
