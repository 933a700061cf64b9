"""Finding and loading plugins by entry-point name, and describing where each comes from.

`load_plugins(policy)` is the one way in: the owner calls it at start, and so can
``qsched policy check`` and ``simulate``. It imports and builds every plugin the policy names
(calling each factory with its options) and runs no plugin method; a name that no installed
distribution provides, or a factory that fails, raises `PluginError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from consumers.errors import OwnerError
from consumers.plugins.api import (
    GROUPS,
    AdmissionPlugin,
    EventSink,
    JobFacts,
    OrderingPlugin,
    checked_term,
)
from schemas.policy import PluginsPolicy, Policy

PROTOCOLS: dict[str, type] = {
    "admission": AdmissionPlugin,
    "ordering": OrderingPlugin,
    "event_sinks": EventSink,
}


class PluginError(OwnerError):
    """A plugin the policy names is not installed, or cannot be built."""

    exit_code = 2
    hint = "`qsched plugins` lists what is installed; fix the policy's [plugins] or install it"


@dataclass(frozen=True)
class Origin:
    """Where a plugin comes from: its entry point and the distribution that declares it."""

    point: str
    name: str
    value: str
    distribution: str | None
    version: str | None

    @property
    def module(self) -> str:
        """The module the entry point imports."""
        return self.value.split(":", 1)[0]

    @classmethod
    def of(cls, point: str, ep: EntryPoint) -> Origin:
        """The origin of entry point `ep` of control point `point`."""
        dist = ep.dist
        return cls(
            point,
            ep.name,
            ep.value,
            dist.metadata["Name"] if dist is not None else None,
            dist.version if dist is not None else None,
        )


@dataclass(frozen=True)
class Loaded:
    """A plugin built from its factory."""

    origin: Origin
    plugin: Any

    @property
    def name(self) -> str:
        """Its entry-point name (as the policy file says it)."""
        return self.origin.name


@dataclass(frozen=True)
class Plugins:
    """Every plugin the policy asked for, built, and the policy's plugin settings."""

    settings: PluginsPolicy = field(default_factory=PluginsPolicy)
    admission: tuple[Loaded, ...] = ()
    ordering: Loaded | None = None
    event_sinks: tuple[Loaded, ...] = ()

    @property
    def loaded(self) -> tuple[Loaded, ...]:
        """All of them, admission first."""
        ordering = (self.ordering,) if self.ordering is not None else ()
        return (*self.admission, *ordering, *self.event_sinks)

    def site_term(self, job: JobFacts) -> float | None:
        """The ordering plugin's term for `job`, called directly (no thread, no time limit):
        for replays and simulations of a trusted plugin. None without an ordering plugin.

        Raises:
            TypeError: the plugin answered something that is not a finite number.
        """
        if self.ordering is None:
            return None
        return checked_term(self.ordering.plugin.term(job))


def available(point: str) -> dict[str, EntryPoint]:
    """The installed entry points of a control point, by name (the first one of a name wins)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUPS[point]):
        found.setdefault(ep.name, ep)
    return found


def build(point: str, name: str, options: Mapping[str, Any], *args: Any) -> Loaded:
    """Import plugin `name` of `point` and call its factory with `args` and `options`.

    Raises:
        PluginError: not installed, not importable, the factory failed, or what it built lacks
            the control point's method.
    """
    ep = available(point).get(name)
    if ep is None:
        known = ", ".join(sorted(available(point))) or "none installed"
        raise PluginError(f"no {point} plugin named {name!r} ({GROUPS[point]}: {known})")
    origin = Origin.of(point, ep)
    try:
        factory = ep.load()
        plugin = factory(*args, **dict(options))
    except Exception as exc:
        raise PluginError(f"{point} plugin {name!r} ({ep.value}) failed to load: {exc!r}") from exc
    protocol = PROTOCOLS.get(point)
    if protocol is not None and not isinstance(plugin, protocol):
        raise PluginError(
            f"{point} plugin {name!r} ({ep.value}) built {type(plugin).__name__}, "
            f"which is no {protocol.__name__}"
        )
    return Loaded(origin, plugin)


def load_plugins(policy: Policy) -> Plugins:
    """Build every plugin `policy.plugins` names (no plugin method is called).

    Raises:
        PluginError: the first plugin that is missing or cannot be built.
    """
    settings = policy.plugins

    def one(point: str, name: str) -> Loaded:
        return build(point, name, settings.options.get(name, {}))

    return Plugins(
        settings=settings,
        admission=tuple(one("admission", n) for n in settings.admission),
        ordering=one("ordering", settings.ordering) if settings.ordering else None,
        event_sinks=tuple(one("event_sinks", n) for n in settings.event_sinks),
    )


def installed() -> list[Origin]:
    """Every plugin installed in this environment, by control point then name."""
    return [Origin.of(point, ep) for point in GROUPS for _, ep in sorted(available(point).items())]
