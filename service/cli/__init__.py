"""The `booking-guard` console script: one module per command group, wired in `main.py`."""
