"""Silence two harmless notices that importing torchao (pulled in by transformers' quantizers) prints on every run.

On a machine without its CUDA kernels torchao logs "Failed to load .../_C_*.so" for each, and registering
its enums with torch's pytree logs a deprecation notice; neither affects what RED Explorer runs.
"""

from __future__ import annotations

import logging

HARMLESS = {
    "torchao": "Failed to load ",  # a CUDA-only kernel library on a machine that cannot load it
    "torch.utils._pytree": "is an Enum subclass and is now natively supported",  # torchao registering enums
}


def _harmless(phrase: str):
    def keep(record: logging.LogRecord) -> bool:
        return phrase not in record.getMessage()

    return keep


for _logger, _phrase in HARMLESS.items():
    logging.getLogger(_logger).addFilter(_harmless(_phrase))
