"""Blob garbage collection: delete blobs no render uses once nobody has uploaded or asked for them in a while.

A blob is kept while any render (whatever its state: queued, running, finished, failed) names it as an
input, mask, output or reference, and while it was uploaded, found (FindBlobs) or re-stored within the
retention period; its file's mtime records that last use. Cut uploads nobody resumed within their own
retention are removed as well.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .blobs import BlobStore, human_bytes
from .catalog import Catalog

log = logging.getLogger("shotpass.gc")
DAY = 86400.0


@dataclass
class GcReport:
    dry_run: bool
    older_than_days: float
    deleted: List[Tuple[str, int]] = field(default_factory=list)  # (digest, size)
    partials: List[Tuple[Path, int]] = field(default_factory=list)  # stale partial uploads: (file, size)
    kept_referenced: int = 0
    kept_recent: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size in self.deleted) + sum(size for _, size in self.partials)

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (
            f"{verb} {human_bytes(self.freed_bytes)}: {len(self.deleted)} unused blob(s) older than "
            f"{self.older_than_days:g} day(s), {len(self.partials)} stale partial upload(s); kept "
            f"{self.kept_referenced} blob(s) used by renders and {self.kept_recent} recent one(s)"
        )

    def as_dict(self) -> Dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "older_than_days": self.older_than_days,
            "freed_bytes": self.freed_bytes,
            "deleted": [{"digest": d, "size": s} for d, s in self.deleted],
            "partial_uploads": [{"file": str(p), "size": s} for p, s in self.partials],
            "kept_referenced": self.kept_referenced,
            "kept_recent": self.kept_recent,
        }


def collect(
    store: BlobStore,
    catalog: Catalog,
    older_than_days: float,
    dry_run: bool = False,
    partial_retention_hours: Optional[float] = None,
    now: Optional[float] = None,
) -> GcReport:
    """Delete (or with dry_run only list) unreferenced blobs unused for `older_than_days`, and partial
    uploads untouched for `partial_retention_hours` (None: as old as the blobs)."""
    now = time.time() if now is None else now
    cutoff = now - older_than_days * DAY
    report = GcReport(dry_run=dry_run, older_than_days=older_than_days)
    referenced = catalog.referenced_digests()
    candidates = []
    for digest, size, mtime in store.blobs():
        if digest in referenced:
            report.kept_referenced += 1
        elif mtime >= cutoff:
            report.kept_recent += 1
        else:
            candidates.append((digest, size))
    # A render submitted during the scan may already use a candidate: ask the catalog again, under the lock
    # that submits hold from checking their blobs until their render is recorded.
    with store.gc_lock(exclusive=True):
        referenced = catalog.referenced_digests()
        for digest, size in candidates:
            if digest in referenced:
                report.kept_referenced += 1
                continue
            if dry_run:
                report.deleted.append((digest, size))
                continue
            freed = store.delete_if_older(digest, cutoff)  # None: asked for or re-uploaded meanwhile
            if freed is None:
                report.kept_recent += 1
            else:
                report.deleted.append((digest, freed))
    partial_cutoff = cutoff if partial_retention_hours is None else now - partial_retention_hours * 3600
    report.partials = store.remove_stale_partials(partial_cutoff, dry_run=dry_run)
    return report


class PeriodicGc:
    """Runs `collect` every `interval_hours` inside the server, logging what each run freed."""

    def __init__(
        self, store: BlobStore, catalog: Catalog, interval_hours: float, retention_days: float,
        partial_retention_hours: float,
    ) -> None:
        self.store, self.catalog = store, catalog
        self.interval_s = interval_hours * 3600
        self.retention_days = retention_days
        self.partial_retention_hours = partial_retention_hours
        self.last: Optional[GcReport] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shotpass-blob-gc", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def run_once(self) -> GcReport:
        self.last = collect(self.store, self.catalog, self.retention_days,
                            partial_retention_hours=self.partial_retention_hours)
        log.info("blob gc: %s", self.last.summary())
        return self.last

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # a failed run is retried next interval; the server keeps serving
                log.exception("blob gc failed")


def periodic_gc(store: BlobStore, catalog: Catalog, cfg: Any) -> Optional[PeriodicGc]:
    """The server's GC thread (not started), or None when [server] blob_gc_interval_hours is 0."""
    if cfg.blob_gc_interval_hours <= 0:
        return None
    return PeriodicGc(store, catalog, cfg.blob_gc_interval_hours, cfg.blob_retention_days,
                      cfg.partial_upload_retention_hours)
