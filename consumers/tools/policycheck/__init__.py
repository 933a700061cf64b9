"""`qsched policy check FILE`: a policy file validated without starting an owner."""
