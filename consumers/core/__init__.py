"""The pure core of the owner: no I/O, no clock, no randomness (the shell passes `now`)."""
