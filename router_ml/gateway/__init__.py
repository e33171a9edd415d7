"""The router in a gateway: an OpenAI-compatible routing proxy, a decision service, a LiteLLM hook.

Install with the ``serve`` extra (starlette, uvicorn, httpx). ``import router_ml`` never imports
this package, and this ``__init__`` imports nothing heavy, so the core library stays light and
``router-ml --help`` stays fast; import the submodules you need (``router_ml.gateway.app``, ...).
"""
