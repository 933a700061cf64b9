"""Calls into plugin code with a time limit, on a thread of the plugin's own.

Python cannot kill a thread, so a call that overruns its limit is left running on its daemon
thread: the caller gets `PluginFailure` at the deadline, and until that call returns the plugin
is *busy*: further calls fail at once (no thread piles up behind a hung one, and the owner never
waits twice for the same hang). If the hung call ever returns, its answer is thrown away and
the plugin serves again. The daemon thread never keeps the process from exiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any

from consumers.errors import OwnerError


class PluginFailure(OwnerError):
    """A plugin call raised, overran its time limit, or the plugin is still busy with one."""


@dataclass
class _Call:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class TimedCaller:
    """Runs one plugin's calls one at a time on its own daemon thread, each with a limit."""

    def __init__(self, name: str, timeout_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._calls: SimpleQueue[_Call] = SimpleQueue()
        self._lock = threading.Lock()
        self._hung: _Call | None = None
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the plugin's thread, within the time limit.

        Raises:
            PluginFailure: it raised (the message has its repr), took longer than the limit,
                or the plugin is still inside a call that overran earlier.
        """
        with self._lock:
            if self._hung is not None:
                raise PluginFailure(
                    f"still inside a call that overran its {self.timeout_s:g} s limit"
                )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=f"plugin-{self.name}", daemon=True
                )
                self._thread.start()
        call = _Call(fn, args)
        self._calls.put(call)
        if not call.done.wait(self.timeout_s):
            with self._lock:
                if not call.done.is_set():
                    self._hung = call
                    raise PluginFailure(f"no answer within {self.timeout_s:g} s")
        if call.error is not None:
            raise PluginFailure(repr(call.error))
        return call.value

    @property
    def busy(self) -> bool:
        """Whether a call that overran its limit is still running."""
        with self._lock:
            return self._hung is not None

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            try:
                call.value = call.fn(*call.args)
            except BaseException as exc:  # even SystemExit: the plugin fails, not the thread
                call.error = exc
            with self._lock:
                call.done.set()
                if self._hung is call:
                    self._hung = None
