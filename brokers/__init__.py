"""Broker edge of qsched: settings, connection parameters, topology and local bootstrap."""
