"""booking-guard's benchmarks: run with `python -m bench`; bench/suite.py says how to add one."""
