"""Measure first, keep watching: traffic analysis, drift and partitioned (Dask) runs (issue 10).

- :mod:`~router_ml_lab.measure.request_types`: a readable request type from the feature vector.
- :mod:`~router_ml_lab.measure.dataset`: partitioned inputs (JSONL, JSONL.gz, Parquet files).
- :mod:`~router_ml_lab.measure.scan`: one partition → compact per-request arrays (the heavy work).
- :mod:`~router_ml_lab.measure.runner`: runs the scan in this process or on Dask.
- :mod:`~router_ml_lab.measure.analyze` and ``report``: ``router-ml analyze``.
- :mod:`~router_ml_lab.measure.drift`: ``router-ml drift``.
"""
