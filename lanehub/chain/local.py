"""A whole chain on one machine: HQ broker, store brokers, HQ and edges as processes.

``lanehub demo`` runs one, with simulated lane devices per store
(``start_simulators``); the tests build them to kill and restart parts.
Everything listens on free loopback ports; nothing leans on services that
happen to run on the machine.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

from lanehub.chain.mosquitto import Mosquitto, free_port
from lanehub.chain.processes import ServiceProcess, lanehub_command, run_lanehub
from lanehub.protocol.acl import HQ_BROKER_MESSAGE_LIMIT, hq_acl_file, new_password

PASSWORD_RE = re.compile(r'^password = "([^"]+)"$', re.MULTILINE)


class SimulatorProcess(ServiceProcess):
    """`lanehub devices simulate` for one store's lanes: a process like the edges (lanehub/chain
    never imports devices/), its devices.toml holding only the store id and broker."""

    def __init__(self, store: str, broker_port: int, lanes: tuple[str, ...], workdir: Path, out: Path,
                 http_port: int | None = None, log_level: str = "INFO"):
        config: dict[str, dict[str, Any]] = {"store": {"id": store},
                                             "broker": {"host": "127.0.0.1", "port": broker_port},
                                             "log": {"level": log_level}}
        super().__init__("devices", f"{store}-devices", config, workdir)
        self.store, self.lanes, self.out, self.http_port = store, lanes, Path(out), http_port

    @property
    def url(self) -> str | None:
        """The simulator's form."""
        return f"http://127.0.0.1:{self.http_port}/" if self.http_port else None

    def start(self) -> "SimulatorProcess":
        self.write_config()
        args = ["--out", str(self.out), "--no-stdin", *(a for lane in self.lanes for a in ("--lane", lane))]
        if self.http_port:
            args += ["--http-port", str(self.http_port)]
        with open(self.log_path, "ab") as log:
            # stdin: nothing (the demo's terminal is not the simulator's).
            self.process = subprocess.Popen(
                lanehub_command("devices", "simulate", "-c", str(self.config_path), *args),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                env=os.environ | {"PYTHONUNBUFFERED": "1"}, start_new_session=True)  # as ServiceProcess
        return self


class Chain:
    def __init__(self, workdir: str | Path, stores: tuple[str, ...] = ("S001", "S002"), *,
                 block_size: int = 100, code_low_water: int = 20, outbox_retry: float = 2.0, log_level: str = "INFO",
                 tls: dict[str, str] | None = None, store_settings: dict[str, dict[str, Any]] | None = None,
                 hq_settings: dict[str, dict[str, Any]] | None = None,
                 edge_settings: dict[str, dict[str, dict[str, Any]]] | None = None,
                 cli: Callable[..., subprocess.CompletedProcess[str]] = run_lanehub, hq_db: str | None = None):
        self.workdir = Path(workdir)
        # [hq] db: a SQLite file in workdir, or a postgresql:// URL (an empty schema of its own).
        self.hq_db = hq_db or str(self.workdir / "hq.db")
        # How hq_cli/edge_cli run a command: a process (run_lanehub), or whatever the
        # caller gives with its signature (tests run their setup commands in-process).
        self.cli = cli
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stores = stores
        self.hq_password = new_password()
        # tls: {"cafile", "certfile", "keyfile"} puts the HQ link on TLS; HQ and edges verify with cafile.
        self.tls = tls
        # Extra [store] keys per store, e.g. {"S002": {"block_defaulters": True}}.
        self.store_settings = store_settings or {}
        # Extra hq.toml sections, e.g. {"import": {"customers": {...}}}.
        self.hq_settings = hq_settings or {}
        # Extra edge.toml sections per store, e.g. {"S001": {"mail": {"host": ...}}}.
        self.edge_settings = edge_settings or {}
        # Every site's page on its own free port (0 turns a page off).
        self.web_ports = {name: free_port() for name in ("hq", *stores)}
        self.hq_broker = Mosquitto(self.workdir / "hq-broker", users={"hq": self.hq_password}, acl=hq_acl_file("hq", []), tls=tls,
                                   username_as_clientid=True, message_size_limit=HQ_BROKER_MESSAGE_LIMIT)
        self.store_brokers = {s: Mosquitto(self.workdir / f"{s}-broker", anonymous=True) for s in stores}
        self.block_size = block_size
        self.code_low_water = code_low_water
        self.outbox_retry = outbox_retry
        self.log_level = log_level
        self.store_passwords: dict[str, str] = {}
        self.hq: ServiceProcess | None = None
        self.hq_processes: dict[str, ServiceProcess] = {}  # HQ processes beside self.hq (add_hq_process)
        self.edges: dict[str, ServiceProcess] = {}
        self.simulators: dict[str, SimulatorProcess] = {}

    # --- configs ---------------------------------------------------------------------

    def hq_config(self) -> dict[str, dict[str, Any]]:
        b = self.hq_broker
        config: dict[str, dict[str, Any]] = {
            "hq": {"db": self.hq_db},
            "broker": {"host": "127.0.0.1", "port": b.port, "username": "hq", "password": self.hq_password,
                       "passwd_file": str(b.passwd_path), "acl_file": str(b.acl_path), "reload_command": b.reload_command,
                       "tls_ca": self.tls["cafile"] if self.tls else ""},
            "codes": {"prefix": "CUST-", "width": 5, "block_size": self.block_size},
            "web": {"port": self.web_ports["hq"]},
            "log": {"level": self.log_level},
        }
        return config | self.hq_settings

    def edge_config(self, store: str) -> dict[str, dict[str, Any]]:
        config: dict[str, dict[str, Any]] = {
            "store": {"id": store, "db": str(self.workdir / f"{store}.db"), "code_low_water": self.code_low_water,
                      "outbox_retry": self.outbox_retry} | self.store_settings.get(store, {}),
            "broker": {"host": "127.0.0.1", "port": self.store_brokers[store].port},
            "hq": {"host": "127.0.0.1", "port": self.hq_broker.port, "username": store,
                   "password": self.store_passwords[store], "tls_ca": self.tls["cafile"] if self.tls else ""},
            "web": {"port": self.web_ports[store]},
            "log": {"level": self.log_level},
        }
        return config | self.edge_settings.get(store, {})

    def add_hq_process(self, username: str) -> ServiceProcess:
        """Another HQ process on HQ's database (PostgreSQL: docs/scaling.md), with a broker
        user and a page of its own; it registers its user with the broker when it starts."""
        config = self.hq_config()
        config["broker"] = config["broker"] | {"username": username, "password": new_password()}
        self.web_ports[username] = free_port()
        config["web"] = {"port": self.web_ports[username]}
        process = ServiceProcess("hq", username, config, self.workdir / username)
        self.hq_processes[username] = process
        return process

    def web_url(self, site: str, path: str = "/") -> str:
        """A page of "hq" or a store (the [web] port its generated config sets)."""
        return f"http://127.0.0.1:{self.web_ports[site]}{path}"

    @property
    def hq_config_path(self) -> Path:
        return self.workdir / "hq" / "hq.toml"

    def hq_cli(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `lanehub hq ARGS -c hq.toml`."""
        return self.cli("hq", *args, "-c", str(self.hq_config_path), check=check, input=input)

    def edge_cli(self, store: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli("edge", *args, "-c", str(self.edges[store].config_path), check=check)

    # --- lifecycle -------------------------------------------------------------------

    def start_brokers(self) -> None:
        self.hq_broker.start()
        for broker in self.store_brokers.values():
            broker.start()

    def register_stores(self) -> None:
        self.hq = ServiceProcess("hq", "hq", self.hq_config(), self.workdir / "hq")
        self.hq.write_config()
        for store in self.stores:
            if store not in self.store_passwords:
                out = self.hq_cli("store", "add", store).stdout
                password = PASSWORD_RE.search(out)
                assert password is not None, out  # `store add` prints the store's hq.toml lines
                self.store_passwords[store] = password.group(1)
            self.edges[store] = ServiceProcess("edge", store, self.edge_config(store), self.workdir / store)

    def start(self, demo_customers: int = 0, prepare: Callable[["Chain"], None] | None = None) -> "Chain":
        """``prepare(chain)`` runs HQ commands before HQ starts (what its config refers to)."""
        self.start_brokers()
        self.register_stores()
        if demo_customers:
            self.hq_cli("customers", "load-demo", str(demo_customers))
        if prepare:
            prepare(self)
        assert self.hq is not None  # set by register_stores
        self.hq.start()
        # Edges that ask before HQ subscribes wait a request timeout for nothing.
        self.hq.wait_for_log("lanehub-hq: connected", 20)
        for edge in self.edges.values():
            edge.start()
        return self

    def start_simulators(self, lanes: tuple[str, ...] = ("L1",), http: bool = True) -> dict[str, SimulatorProcess]:
        """Simulated scanner, card reader and printer for ``lanes`` of every store
        (`lanehub devices simulate`); each store's receipts go to ``receipts/STORE``."""
        for store in self.stores:
            sim = SimulatorProcess(store, self.store_brokers[store].port, lanes, self.workdir / f"{store}-devices",
                                   self.workdir / "receipts" / store, free_port() if http else None, self.log_level)
            self.simulators[store] = sim.start()
        return self.simulators

    def stop(self) -> None:
        """Everything that publishes first, the brokers last, so that every retained status
        is a clean stop's (the edges' with their figures), not a last will."""
        for simulator in self.simulators.values():  # first: their "stopped" status needs the broker
            simulator.stop()
        for edge in self.edges.values():
            edge.stop()
        for process in self.hq_processes.values():
            process.stop()
        if self.hq:
            self.hq.stop()
        for broker in self.store_brokers.values():
            broker.stop()
        self.hq_broker.stop()
