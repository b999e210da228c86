"""Run as a script: prepare one data file as the app does and print the peak memory it added (a fresh process)."""

import json
import resource
import sys
import time


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports kB


def main(path: str, tokenizer_source: str, max_length: int) -> None:
    from transformers import AutoTokenizer

    from red_explorer.data.prepared import prepare_data
    from red_explorer.data.tables import DataConfig

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    tokenizer("warm up the tokenizer")
    before, start = peak_rss_bytes(), time.perf_counter()
    prepared = prepare_data(path, tokenizer, DataConfig(max_length=max_length))
    seconds = time.perf_counter() - start
    lengths = [len(ids) for ids in prepared.tokenized["train"]["input_ids"]]
    report = {
        "added_bytes": peak_rss_bytes() - before,
        "seconds": seconds,
        "rows": prepared.detected.num_train + prepared.detected.num_validation,
        "longest": max(lengths),
        "description": prepared.detected.description,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
