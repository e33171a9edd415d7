"""Evaluation and benchmarks: routing quality and speed of router-ml against baselines and peers.

Never imported by the runtime ``router_ml``: it stays free of evaluation code, and the heavy
dependencies here (matplotlib, tqdm, optional peers) load only when an evaluation runs.
"""
