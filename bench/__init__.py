"""The orchestrator's benchmark: `make bench` (python -m bench) and `make bench-smoke`.

Not part of the product (setup.cfg packages only domain, application, infrastructure and api),
and nothing in the product imports it. See README.md, "Performance".
"""
