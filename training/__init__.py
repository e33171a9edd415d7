"""Training pipeline of router-ml: labeled traffic → escalation-biased, calibrated ONNX tier model.

Entry point: ``router-ml train`` (``training.cli``) or :func:`training.pipeline.train`. Only the
standard library is imported here, so ``router_ml.cli`` can register the subcommand cheaply.
"""
