"""Every problem of a policy file, with the line it is on, without starting an owner.

Three layers, each only when the one before passed: the TOML syntax (the parser's line), the
schema (`schemas.policy.Policy`; every field pydantic refuses, not only the first, with the
checks between classes read from the raw tables beside them), then what the
schema cannot see because it is about how the owner will behave: a class that no mode runs, a
class whose largest job can never fit the calibration window, a run-time limit shorter than a
run's overhead, classes that preempt each other, nobody allowed to operate. Errors make the file
unusable or leave jobs waiting for ever; warnings are legal but probably not meant. Site plugins
named by the policy are loaded (and so checked) by `plugin_problems` when the build has them.
Pure apart from importing plugins.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from consumers.core.policy import estimated_duration_s
from consumers.plugins.loading import build
from schemas.policy import Policy, class_reference_problems

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy file: how bad, what, and where (None: no single line)."""

    severity: str
    message: str
    line: int | None = None


class Lines:
    """Finds the line of a key, a table or a key inside a table of the policy text."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def of(self, loc: Sequence[int | str]) -> int | None:
        """The line of the deepest part of `loc` found (a key within its table when nested)."""
        keys = [str(p) for p in loc]
        for depth in range(len(keys), 0, -1):
            table, key = keys[: depth - 1], keys[depth - 1]
            found = self._key(table, key)
            if found is not None:
                return found
        return None

    def _key(self, table: list[str], key: str) -> int | None:
        header = re.compile(r"^\s*\[\s*" + re.escape(".".join([*table, key])) + r"\s*\]")
        assign = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        current: list[str] = []
        for number, line in enumerate(self.lines, start=1):
            if header.match(line):
                return number
            opened = re.match(r"^\s*\[([^\]]+)\]", line)
            if opened:
                current = [p.strip() for p in opened.group(1).split(".")]
            elif current == table and assign.match(line):
                return number
        return None


def check_text(text: str) -> tuple[Policy | None, list[Problem]]:
    """The policy in `text` (None when it is not one) and every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(ERROR, f"TOML: {exc}", _toml_line(exc, text))]
    lines = Lines(text)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"]
            if not loc:
                continue  # the checks between classes: read from the raw tables below
            where = ".".join(str(p) for p in loc)
            problems.append(Problem(ERROR, f"{where}: {error['msg']}", lines.of(loc)))
        problems += _class_references(data, lines)
        return None, sorted(problems, key=lambda p: p.line if p.line is not None else 1 << 30)
    problems = [problem for check in CHECKS for problem in check(policy, lines)]
    return policy, problems + plugin_problems(policy, lines)


def _class_references(data: dict[str, Any], lines: Lines) -> list[Problem]:
    """The checks between classes (`class_reference_problems`) on the raw tables, so they are
    reported with the errors of single fields instead of only once those are fixed."""
    if "classes" not in data:
        return []  # the default classes
    classes = data["classes"]
    if not isinstance(classes, dict):
        return []  # a field error of its own
    return [
        Problem(
            ERROR,
            message,
            lines.of(("classes", name, "preempts")) if name else lines.of(("classes",)),
        )
        for name, message in class_reference_problems(classes)
    ]


def _toml_line(exc: tomllib.TOMLDecodeError, text: str) -> int | None:
    """The line the TOML parser blames (in its message before Python 3.14)."""
    line = getattr(exc, "lineno", None)
    if isinstance(line, int):
        return line
    found = re.search(r"at line (\d+)", str(exc))
    if found:
        return int(found.group(1))
    return max(len(text.splitlines()), 1) if "end of document" in str(exc) else None


def _modes(policy: Policy, lines: Lines) -> list[Problem]:
    problems = []
    for name, cls in policy.classes.items():
        if not cls.modes:
            problems.append(
                Problem(
                    ERROR,
                    f"class {name!r} runs in no mode: its jobs would wait for ever",
                    lines.of(("classes", name, "modes")),
                )
            )
    if not any(policy.mode in cls.modes for cls in policy.classes.values()):
        problems.append(
            Problem(
                WARNING,
                f"no class runs in the default mode {policy.mode.value!r}: nothing starts "
                "until an operator changes the mode",
                lines.of(("mode",)),
            )
        )
    return problems


def _calibration_window(policy: Policy, lines: Lines) -> list[Problem]:
    valid_s = policy.calibration_valid_s
    if valid_s is None:
        return []
    problems = []
    fitting = int((valid_s - policy.job_overhead_s) * policy.shot_rate_hz)
    for name, cls in policy.classes.items():
        if cls.calibrates:
            continue
        if cls.max_shots is not None and estimated_duration_s(policy, cls.max_shots) > valid_s:
            problems.append(
                Problem(
                    ERROR,
                    f"class {name!r}: a job of max_shots = {cls.max_shots} needs about "
                    f"{estimated_duration_s(policy, cls.max_shots):.0f} s, longer than "
                    f"calibration_valid_s = {valid_s:g}: jobs over {max(fitting, 0)} shots "
                    "are held for ever",
                    lines.of(("classes", name, "max_shots")),
                )
            )
    return problems


def _runtime(policy: Policy, lines: Lines) -> list[Problem]:
    return [
        Problem(
            WARNING,
            f"class {name!r}: max_runtime_s = {cls.max_runtime_s:g} is shorter than "
            f"job_overhead_s = {policy.job_overhead_s:g}: most runs would time out",
            lines.of(("classes", name, "max_runtime_s")),
        )
        for name, cls in policy.classes.items()
        if cls.max_runtime_s is not None and cls.max_runtime_s < policy.job_overhead_s
    ]


def _preemption(policy: Policy, lines: Lines) -> list[Problem]:
    problems = []
    for name, cls in policy.classes.items():
        for other in cls.preempts:
            target = policy.classes[other]
            if other != name and name in target.preempts and name < other:
                problems.append(
                    Problem(
                        WARNING,
                        f"classes {name!r} and {other!r} preempt each other: a job may bounce "
                        f"up to max_preemptions = {policy.max_preemptions} times",
                        lines.of(("classes", name, "preempts")),
                    )
                )
            if target.rank < cls.rank:
                problems.append(
                    Problem(
                        WARNING,
                        f"class {name!r} (rank {cls.rank}) preempts {other!r}, which is served "
                        f"before it (rank {target.rank})",
                        lines.of(("classes", name, "preempts")),
                    )
                )
    return problems


def _people(policy: Policy, lines: Lines) -> list[Problem]:
    problems = []
    if not policy.operators and policy.operator_group is None:
        problems.append(
            Problem(
                WARNING,
                "no operators and no operator_group: nobody may pause, calibrate or cancel "
                "others' jobs",
                lines.of(("operators",)),
            )
        )
    per_user, total = policy.max_waiting_per_user, policy.max_waiting_total
    if per_user is not None and total is not None and per_user > total:
        problems.append(
            Problem(
                WARNING,
                f"max_waiting_per_user = {per_user} is above max_waiting_total = {total}",
                lines.of(("max_waiting_per_user",)),
            )
        )
    return problems


CHECKS: tuple[Callable[[Policy, Lines], list[Problem]], ...] = (
    _modes,
    _calibration_window,
    _runtime,
    _preemption,
    _people,
)


def plugin_problems(policy: Policy, lines: Lines) -> list[Problem]:
    """Plugins the policy names that cannot be found or built, each on the line that names it
    (``admission = [...]``, ``ordering = ...``), found with the owner's own loader
    (``consumers.plugins.loading.build``, as ``load_plugins`` calls it)."""
    settings = policy.plugins
    problems = []
    for point, name in settings.names:
        try:
            build(point, name, settings.options.get(name, {}))
        except Exception as exc:  # a site's factory may raise anything: it is the finding
            line = lines.of(("plugins", point)) or lines.of(("plugins",))
            problems.append(Problem(ERROR, f"plugins: {exc}", line))
    return problems
