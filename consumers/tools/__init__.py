"""Operator tools that read the event log or a policy: events/history, replay, simulate, policy check, the demo."""
