"""A private three-node RabbitMQ cluster on loopback, for tests that kill nodes.

Each node is a `PrivateNode` (own name, ports, data dir) that shares an Erlang cookie and a
private epmd port with the others (never the shared node's epmd on 4369), following
/work/shared/notes/rabbitmq-cluster-here.md. `Cluster.stop` stops the nodes and their epmd.
"""

from __future__ import annotations

import json
import secrets
import shutil
import string
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from brokers.bootstrap import PrivateNode, free_port
from brokers.connection import wait_reachable


@dataclass
class ClusterNode(PrivateNode):
    """A private node that can join others: shared cookie (`home`) and epmd port."""

    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qsched-cookie-")))
    epmd_port: int = 0

    def _env(self) -> dict[str, str]:
        return super()._env() | {
            "HOME": str(self.home),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, *args: str, timeout_s: float = 120) -> str:
        """Run ``rabbitmqctl -n <this node> ARGS``; returns stdout.

        Raises:
            subprocess.CalledProcessError: it failed (its output is in the exception).
        """
        done = subprocess.run(
            [str(self.rabbitmqctl), "-n", self.node_name, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        return done.stdout


@dataclass
class Cluster:
    """Three (or `size`) private nodes joined as one cluster."""

    nodes: list[ClusterNode]
    home: Path
    epmd_port: int

    @classmethod
    def start(cls, server: Path, size: int = 3) -> Cluster:
        """Boot `size` nodes in parallel, join them to the first, wait until all answer."""
        home = Path(tempfile.mkdtemp(prefix="qsched-cluster-"))
        cookie = home / ".erlang.cookie"
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
        cookie.chmod(0o400)
        epmd_port = free_port()
        nodes = [
            ClusterNode(
                server,
                config_lines=("disk_free_limit.absolute = 50MB",),
                home=home,
                epmd_port=epmd_port,
            )
            for _ in range(size)
        ]
        cluster = cls(nodes, home, epmd_port)
        errors: list[BaseException] = []

        def boot(node: ClusterNode) -> None:
            try:
                node.start()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=(n,)) for n in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            cluster.stop()
            raise errors[0]
        try:
            for node in nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", nodes[0].node_name)
                node.ctl("start_app")
                assert wait_reachable(node.url, 90), f"{node.node_name} did not come back"
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def urls(self, first: int = 0) -> str:
        """The nodes' URLs, ``;``-separated, starting with node `first`."""
        order = self.nodes[first:] + self.nodes[:first]
        return ";".join(n.url for n in order)

    def live(self) -> ClusterNode:
        """A node that runs."""
        return next(n for n in self.nodes if n.process is not None)

    def leader_of(self, queue: str) -> ClusterNode:
        """The node leading a quorum queue or stream (its writer)."""
        rows = json.loads(self.live().ctl("list_queues", "name", "leader", "--formatter", "json"))
        leader = next(r["leader"] for r in rows if r["name"] == queue)
        return next(n for n in self.nodes if n.node_name == leader)

    def connections_on(self, node: ClusterNode) -> list[str]:
        """The client-given names of the connections a node holds."""
        out = node.ctl("list_connections", "client_properties", "--formatter", "json")
        names = []
        for row in json.loads(out):
            props = row.get("client_properties") or []
            for item in props:  # [[key, type, value], ...]
                if isinstance(item, list) and item and item[0] == "connection_name":
                    names.append(str(item[-1]))
        return names

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again on its data dir: it rejoins the cluster by itself."""
        node.restart()

    def stop(self) -> None:
        """Stop every node, their epmd, and remove the data dirs."""
        for node in self.nodes:
            node.stop()
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        subprocess.run(
            [epmd, "-port", str(self.epmd_port), "-kill"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        shutil.rmtree(self.home, ignore_errors=True)
