"""Reading the event log: tail, job history, and exports (JSON lines, Perfetto, HTML timeline).

`topics` names the event topics and payload fields these readers interpret; `model` folds the log
into a neutral timeline and `describe` puts events and job histories into words; the others draw
what those build (`sessions` and `budgets` know the ``session.*`` and budget topics).
"""
