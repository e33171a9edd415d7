"""Does a batch of new task-kind examples help the reader read examples it was not written from?

Splits the seed corpus (``training/router_ml_lab/train/task_kinds.jsonl``) into the lines held out
(``--held-out``, 1-based and inclusive, default the first 716: the corpus before its third batch)
and the rest, then reports ``task_kinds.transfer_accuracy``: five folds over the held-out lines,
each read by a reader fitted on the other folds plus the training split's real prompts, without
and with the other lines, at the bag-of-tokens scale and regularisation the ``--model``'s reader
was fitted with. Needs the cached distillation (``make model`` makes it in ``build/``).
Usage::

    python benchmarks/reader_transfer.py [--held-out 1-716] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json

from labeled_traffic import labeled_traffic

from router_ml.model import read_metadata
from router_ml_lab.quality.splits import TRAIN
from router_ml_lab.train import task_kinds
from router_ml_lab.train.text_embedding import (
    distilled_static_model,
    embedding_vocabulary,
    last_user_token_ids,
    static_vectors,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held-out", default="1-716", help="corpus lines held out, FIRST-LAST")
    parser.add_argument("--data", default="../shared/data", help="traffic/ and models.json here")
    parser.add_argument(
        "--model", default="models/default", help="model whose reader settings to use"
    )
    parser.add_argument("--cache-dir", default="build/text-embedding", help="distillation cache")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    first, last = (int(x) for x in args.held_out.split("-"))
    corpus = task_kinds.load_seed_corpus()
    held_out, added = corpus[first - 1 : last], corpus[: first - 1] + corpus[last:]

    traffic = labeled_traffic(args.data, args.seed)
    train = [r for r, split in zip(traffic.records, traffic.splits, strict=True) if split == TRAIN]
    real = task_kinds.real_examples(
        [r.source for r in train],
        [r.category for r in train],
        [r.request for r in train],
        traffic.config["task_kinds"]["real_per_kind"],
        args.seed,
    )

    static_model = distilled_static_model(args.cache_dir)
    corpus_ids = last_user_token_ids([r.request for r in traffic.records])
    vocabulary = embedding_vocabulary(static_model, corpus_ids, corpus + real)
    vectors = static_vectors(static_model, vocabulary)
    chosen = read_metadata(args.model)["text_embedding"]["task_kinds"]
    result = task_kinds.transfer_accuracy(
        held_out,
        added,
        real,
        vocabulary,
        vectors,
        args.seed,
        lexical_scale=chosen["lexical_scale"],
        regularisation=chosen["regularisation_c"],
    )
    print(json.dumps({"held_out": len(held_out), "added": len(added), **result}, indent=1))


if __name__ == "__main__":
    main()
