"""Write assets/red_block.svg: one transformer block with RED's edit after the FFN down-projection."""

from pathlib import Path

from red_explorer.app.ui.diagram import block_svg

TARGET = Path(__file__).resolve().parents[1] / "assets" / "red_block.svg"
CAPTION = "RED learns h' = scale ⊙ h + bias on the FFN down-projection output of every layer; all weights stay frozen."

if __name__ == "__main__":
    TARGET.write_text(block_svg(("ffn",), "mlp.down_proj", "self_attn.o_proj", CAPTION) + "\n")
    print(f"wrote {TARGET}")
