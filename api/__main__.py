"""`python -m api` runs the `orchestrator` console script."""
from api.cli import main

main()
