"""Settings, connection and CLI errors are one line naming the problem and what to do."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pika.exceptions
import pytest

from brokers.clireport import EXIT_TIMEOUT, EXIT_USAGE, error_record
from brokers.connection import classify_connect_error, connect_failure
from brokers.errors import BrokerError, BrokerRefused, BrokerUnavailable, SettingsError
from brokers.settings import known_variables, load_settings
from producers.errors import NoOwnerAnswered


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("QSCHED_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("QSCHED_NAMESPACE", "my ns", "setting namespace (QSCHED_NAMESPACE)"),
        ("QSCHED_AMQP_URL", "http://foo", "must start with amqp://"),
        ("QSCHED_OWNER__SHOTRATE_HZ", "3", "did you mean QSCHED_OWNER__SHOT_RATE_HZ"),
        ("QSCHED_NAMESPAC", "x", "did you mean QSCHED_NAMESPACE"),
        ("QSCHED_OWNER__PREFETCH", "0", "owner.prefetch"),
    ],
)
def test_a_wrong_variable_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert named in str(info.value) and "\n" not in str(info.value)


def test_a_url_with_a_password_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QSCHED_AMQP_URL", "http://alice:s3cret@foo")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "s3cret" not in str(info.value)


def test_a_missing_or_broken_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("namespace = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('namspace = "x"\n')
    with pytest.raises(SettingsError, match="namspace is not a qsched setting"):
        load_settings(unknown)


def test_every_settings_field_has_a_variable_and_a_meaning() -> None:
    known = known_variables()
    assert "QSCHED_OWNER__SHOT_RATE_HZ" in known and "QSCHED_TRACE_FILE" in known
    assert all(known.values()), [k for k, v in known.items() if not v]


def test_connection_failures_are_told_apart_and_hide_the_password() -> None:
    url = "amqp://bob:s3cret@127.0.0.1:5672/lab"
    auth = connect_failure(url, pika.exceptions.ProbableAuthenticationError("403"))
    vhost = connect_failure(url, pika.exceptions.ProbableAccessDeniedError("530"))
    refused = connect_failure(url, pika.exceptions.AMQPConnectionError(ConnectionRefusedError()))
    assert isinstance(auth, BrokerRefused) and "wrong user name or password" in str(auth)
    assert isinstance(vhost, BrokerRefused) and "'lab'" in str(vhost)
    assert isinstance(refused, BrokerUnavailable) and "qsched broker up" in refused.hint
    assert all("s3cret" not in str(e) for e in (auth, vhost, refused))
    assert classify_connect_error(OSError("timed out")) == "unreachable"


def test_exit_codes_follow_the_table() -> None:
    assert error_record(NoOwnerAnswered("no owner"))[0] == EXIT_TIMEOUT
    assert error_record(click.UsageError("bad"))[0] == EXIT_USAGE
    code, record = error_record(KeyError("boom"))
    assert code == 1 and record["message"].startswith("internal error: KeyError")
    assert "--debug" in record["hint"]


def test_every_qsched_variable_the_slurm_scripts_set_is_known() -> None:
    """The TaskProlog and Epilog run qsched with their own QSCHED_* variables still set: each one
    must be a known name, or every client in a Slurm job and every Epilog call is refused."""
    import re

    scripts = Path(__file__).resolve().parents[2] / "infra" / "slurm"
    named = {
        name
        for script in scripts.glob("*.sh")
        for name in re.findall(r"\bQSCHED_[A-Z_]+\b", script.read_text())
    }
    assert "QSCHED_SLURM_ALLOCATION" in named and "QSCHED_EPILOG_ENV" in named
    assert named <= set(known_variables()), sorted(named - set(known_variables()))


@pytest.mark.parametrize(
    ("raised", "kind", "code"),
    [
        (pika.exceptions.ChannelClosedByBroker(403, "ACCESS_REFUSED - no"), "ChannelClosed", 403),
        (pika.exceptions.ChannelClosedByBroker(405, "RESOURCE_LOCKED"), "ChannelClosed", 405),
        (pika.exceptions.ChannelWrongStateError("closed"), "ChannelClosed", None),
        (pika.exceptions.StreamLostError("reset"), "ConnectionLost", None),
        (pika.exceptions.ConnectionClosedByBroker(320, "shutdown"), "ConnectionLost", None),
        (ConnectionResetError("reset by peer"), "ConnectionLost", None),
    ],
)
def test_pika_errors_are_translated_at_the_broker_edge(
    raised: BaseException, kind: str, code: int | None
) -> None:
    """Given pika's (or the socket's) failure inside `translated`, then a BrokerError of the
    edge comes out, naming what was being done and keeping the broker's reply code."""
    from brokers.connection import translated
    from brokers.errors import ChannelClosed

    with pytest.raises(BrokerError) as caught, translated("read the log"):
        raise raised
    assert type(caught.value).__name__ == kind and str(caught.value).startswith("read the log: ")
    assert caught.value.__cause__ is raised
    if isinstance(caught.value, ChannelClosed):
        assert caught.value.code == code
        if isinstance(raised, pika.exceptions.ChannelClosedByBroker):
            assert caught.value.reason == raised.reply_text  # the broker's words, for messages


def test_only_the_publisher_imports_pika_among_the_owner_and_its_tools() -> None:
    """Given the broker port, then consumers/ name pika's types through brokers.connection's
    aliases and catch its translated errors; only the publisher (below pika's blocking wrapper)
    imports pika."""
    import ast

    root = Path(__file__).resolve().parents[2] / "consumers"
    importers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0] == "pika" for name in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers == {"owner/publish.py"}


def test_client_and_broker_edge_share_one_error_base_and_one_broker_refused() -> None:
    import producers
    from brokers.errors import QschedError
    from producers.errors import ClientError

    assert producers.BrokerRefused is BrokerRefused  # one class, not one per layer
    assert issubclass(BrokerRefused, QschedError) and issubclass(ClientError, QschedError)
    assert issubclass(NoOwnerAnswered, QschedError) and producers.QschedError is QschedError
