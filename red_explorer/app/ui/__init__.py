"""The Gradio app: the only package of red_explorer that imports gradio (lazily, through build_demo)."""


def build_demo(**options):
    """The app as a ``gr.Blocks`` (see ``interface.build_demo``)."""
    from red_explorer.app.ui.interface import build_demo as build

    return build(**options)
