"""The one owner of routing quality: traffic records, labels, splits, evidence and metrics.

The lower layer of the lab: ``train`` and ``evaluate`` both build on it, so the model card and
``router-ml eval`` measure a router the same way.
"""

from pathlib import Path

DEFAULT_DATA = Path("../shared/data")
"""Where the lab looks for labeled traffic, the catalog and request shapes unless told."""
