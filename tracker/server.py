"""Builds a running tracker: store, directory, auth, the gRPC server and the session reaper."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from p2p.v1 import tracker_pb2, tracker_pb2_grpc
from p2p_common.auth import BearerAuthInterceptor
from p2p_common.server import RunningServer, Service, start_server
from p2p_common.tls import ServerTls
from tracker.config import TrackerConfig
from tracker.directory import Directory, Reaper
from tracker.service import TrackerServicer
from tracker.sqlite_store import SqliteStore

SERVICE_NAME = tracker_pb2.DESCRIPTOR.services_by_name["TrackerService"].full_name
PUBLIC_METHODS = frozenset({f"/{SERVICE_NAME}/Login"})
REAPER_STOP_SECONDS = 10.0  # how long a stopping tracker waits for its upkeep thread (a slice takes ~0.1 s)
log = logging.getLogger(__name__)


@dataclass
class Tracker:
    """A started tracker; stop() is graceful."""

    server: RunningServer
    directory: Directory
    reaper: Reaper

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, grace: float = 5.0) -> None:
        self.reaper.stop()
        self.server.stop(grace)
        self.reaper.join(REAPER_STOP_SECONDS)  # its upkeep works in slices of 0.1 s: done before the store closes
        if self.directory.prober:
            self.directory.prober.close()
        self.directory.store.close()


def start_tracker(config: TrackerConfig) -> Tracker:
    """Open the store, start serving on config.listen, and report SERVING when ready."""
    tls = ServerTls.load(config.tls_cert, config.tls_key)  # a bad certificate fails before the store opens
    store = SqliteStore(config.db)
    directory = Directory(store, config)
    resumed = directory.resume_sessions()
    if resumed:
        log.info("%d sessions from before the restart carry on, each with a fresh lease to renew", resumed)
    service = Service(
        SERVICE_NAME, lambda s: tracker_pb2_grpc.add_TrackerServiceServicer_to_server(TrackerServicer(directory), s)
    )
    auth = BearerAuthInterceptor(directory.authenticate, f"/{SERVICE_NAME}/", PUBLIC_METHODS)
    try:
        server = start_server(config.listen, [service], [auth], max_workers=config.max_workers, tls=tls)
    except Exception:
        store.close()
        raise
    reaper = Reaper(directory, interval=max(1.0, min(10.0, config.lease_seconds / 4)))
    reaper.start()
    server.set_serving(True)
    return Tracker(server, directory, reaper)
