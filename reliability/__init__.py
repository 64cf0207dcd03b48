"""Reliability proofs run on demand: the soak (``python -m reliability.soak``), the fault matrix
repeated (``python -m reliability.faults``), the fuzz run (``python -m reliability.fuzz``) and
shutdown under load (``python -m reliability.shutdown``). Short versions of each run in the test
suite (tests/test_reliability_*.py); docs/reliability.md records the figures."""
