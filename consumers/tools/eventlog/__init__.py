"""Reading the event log: tail, job history, and exports (JSON lines, Perfetto, HTML timeline).

`model` is the only module here that knows event topics and payload fields; the others draw
what it builds.
"""
