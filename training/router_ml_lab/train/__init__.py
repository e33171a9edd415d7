"""The training pipeline: labeled traffic → escalation-biased, calibrated ONNX tier model.

Entry point: ``router-ml train`` (:mod:`router_ml_lab.train.cli`) or
:func:`router_ml_lab.train.pipeline.train`.
"""
