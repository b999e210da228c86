"""LoReFT (low-rank representation fine-tuning at chosen prompt positions), as a registry entry."""
