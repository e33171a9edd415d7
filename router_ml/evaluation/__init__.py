"""Evaluation and benchmarks: routing quality and speed of router-ml against baselines and peers.

Not imported by ``import router_ml``: the runtime stays free of evaluation code, and the heavy
dependencies here (matplotlib, tqdm, optional peers) load only when an evaluation runs.
"""
