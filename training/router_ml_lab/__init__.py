"""The offline lab of router-ml: labels and routing quality, training, evaluation.

``quality`` is the lower layer (traffic records, labels, splits, evidence, metrics) that ``train``
(labeled traffic → escalation-biased, calibrated ONNX tier model) and ``evaluate`` (router-ml
against baselines and peers) share; those two never import each other, and the runtime package
``router_ml`` never imports this one. The subcommands register through the ``router_ml.commands``
entry points; only the standard library is imported here.
"""
