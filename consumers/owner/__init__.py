"""The QPU owner process: lease, intake, the I/O shell around the core, effects, metrics."""
