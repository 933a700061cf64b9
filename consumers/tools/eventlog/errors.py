"""Errors of the event-log readers and exporters."""

from __future__ import annotations


class EventLogError(Exception):
    """Root of the event-log errors."""


class BadBound(EventLogError):
    """A ``--from``/``--to`` value that is neither a stream offset nor an ISO time."""


class JobNotFound(EventLogError):
    """No job in the log matches the id or prefix asked for."""


class AmbiguousJob(EventLogError):
    """A job-id prefix matches several jobs."""


class NoEventLog(EventLogError):
    """The event-log stream cannot be read (not declared in this namespace, or not allowed)."""
