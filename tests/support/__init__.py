"""Test helpers shared by more than one tier (owners, brokers, sequences, waiting, the invariant checker, ...)."""
