"""Does a batch of new task-kind examples help the reader read examples it was not written from?

Splits the seed corpus (``training/router_ml_lab/train/task_kinds.jsonl``) into the lines held out
(``--held-out``, 1-based and inclusive, default the first 716: the corpus before its third batch)
and the rest, then reports ``task_kinds.transfer_accuracy``: five folds over the held-out lines,
each read by a reader fitted on the other folds plus the training split's real prompts, without
and with the other lines. Needs the cached distillation (``make model`` makes it in ``build/``).
Usage::

    python benchmarks/reader_transfer.py [--held-out 1-716] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json

from router_ml_lab.quality.data import read_traffic
from router_ml_lab.quality.labels import Catalog, TierRepresentatives
from router_ml_lab.quality.splits import TRAIN, assign_splits
from router_ml_lab.train import task_kinds
from router_ml_lab.train.config import load_config
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
    parser.add_argument("--cache-dir", default="build/text-embedding", help="distillation cache")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    first, last = (int(x) for x in args.held_out.split("-"))
    corpus = task_kinds.load_seed_corpus()
    held_out, added = corpus[first - 1 : last], corpus[: first - 1] + corpus[last:]

    config = load_config(None)
    catalog = Catalog.from_file(f"{args.data}/models.json")
    records, _ = read_traffic([f"{args.data}/traffic"], known_models=catalog.model_tier)
    representatives = TierRepresentatives.fit(
        records, catalog, config["labels"]["per_tier"], config["labels"]["tolerance"]
    )
    records = [r for r in records if representatives.label(r) is not None]
    fractions = tuple(float(f) for f in config["split"]["fractions"])
    splits = assign_splits([r.request for r in records], fractions, args.seed)
    train = [r for r, split in zip(records, splits, strict=True) if split == TRAIN]
    real = task_kinds.real_examples(
        [r.source for r in train],
        [r.category for r in train],
        [r.request for r in train],
        config["task_kinds"]["real_per_kind"],
        args.seed,
    )

    static_model = distilled_static_model(args.cache_dir)
    corpus_ids = last_user_token_ids([r.request for r in records])
    vocabulary = embedding_vocabulary(static_model, corpus_ids, corpus + real)
    vectors = static_vectors(static_model, vocabulary)
    result = task_kinds.transfer_accuracy(held_out, added, real, vocabulary, vectors, args.seed)
    print(json.dumps({"held_out": len(held_out), "added": len(added), **result}, indent=1))


if __name__ == "__main__":
    main()
