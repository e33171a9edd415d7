"""router-ml: route each LLM request to the cheapest model tier that will answer it well.

>>> from router_ml import Router
>>> router = Router.load()                      # shipped model, default policy
>>> router.route({"messages": [{"role": "user", "content": "Classify: great product!"}]}).tier
'economy'
"""

from router_ml.errors import (
    InvalidRequest,
    ModelLoadError,
    PolicyError,
    RouterError,
    SchemaMismatch,
    TokenizerError,
)
from router_ml.features import FEATURE_SCHEMA, FeatureExtractor
from router_ml.policy import Policy
from router_ml.request import ChatRequest, parse_request
from router_ml.router import Decision, Router

__version__ = "0.1.0"

__all__ = [
    "FEATURE_SCHEMA",
    "ChatRequest",
    "Decision",
    "FeatureExtractor",
    "InvalidRequest",
    "ModelLoadError",
    "Policy",
    "PolicyError",
    "Router",
    "RouterError",
    "SchemaMismatch",
    "TokenizerError",
    "parse_request",
]
