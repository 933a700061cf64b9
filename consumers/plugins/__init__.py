"""Site plugins at four control points: admission, ordering, event sinks and backends.

Theory of operation. A site installs a distribution that declares entry points in the groups
``qsched.admission``, ``qsched.ordering``, ``qsched.event_sinks`` or ``qsched.backends``
(`api.GROUPS`), and names them in the policy file's ``[plugins]`` table; backends are named by
``owner.backend`` like the built-in ones. `load_plugins(policy)` builds them (`loading`); the
owner wraps admission and ordering in a `Gate` (asked at the edge, each call time-limited, so
the core stays pure and the log records each answer) and event sinks in a `SinkFanout` (a
buffer and a thread per sink, so the owner never waits for one). `api` is what a plugin author
reads; `reference` holds the project's own plugin of each kind; ``qsched plugins`` lists what
is installed and what the policy loads.
"""

from consumers.plugins.loading import PluginError, Plugins, load_plugins

__all__ = ["PluginError", "Plugins", "load_plugins"]
