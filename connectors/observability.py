"""What the HTTP processes add to the platform's metrics (:mod:`streams.metrics`).

* :class:`RequestMetrics`: an ASGI middleware counting answers by **route
  template** (``/v1/survivors/{survivor_id}/status``), method and status. The
  path itself carries survivor ids, so it is never a label; a request that
  matched no route counts as ``unmatched``.
* :class:`ReferralStatusCollector`: open referrals by status and category,
  counted at scrape time from the intake's copy of ``case-status.v1``: the
  one place that sees every survivor (a router worker sees only its
  partitions, and its counts would move at every rebalance).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from uuid import UUID

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from processors.status import StatusRecord
from streams.metrics import HTTP_REQUESTS

__all__ = ["REFERRALS", "ReferralStatusCollector", "RequestMetrics", "count_referrals"]

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
App = Callable[[Scope, Receive, Send], Any]


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts every HTTP answer by route template, method and status code."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an app that raised before answering: the server answers 500

        async def recording(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            # The method is the caller's text too: only the standard ones become a label.
            method = scope["method"] if scope["method"] in _METHODS else "other"
            HTTP_REQUESTS.labels(route=template, method=method, status=str(status)).inc()


class ReferralStatusCollector(Collector):
    """``safepassage_referrals{status, category}``: referrals by status, all survivors.

    One per process, registered once; the status copies it counts attach and
    detach as intakes start and stop (tests run several in one process).
    """

    def __init__(self) -> None:
        self._sources: dict[int, Callable[[], Mapping[UUID, StatusRecord]]] = {}
        self._lock = threading.Lock()

    def attach(self, records: Callable[[], Mapping[UUID, StatusRecord]]) -> Callable[[], None]:
        """Count ``records`` from now on; the function returned stops that."""
        with self._lock:
            self._sources[id(records)] = records

        def detach() -> None:
            with self._lock:
                self._sources.pop(id(records), None)

        return detach

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "safepassage_referrals",
            "Referrals by status and category, over every survivor's latest status record.",
            labels=["status", "category"],
        )
        with self._lock:
            sources = list(self._sources.values())
        counts: Counter[tuple[str, str]] = Counter()
        for records in sources:
            counts.update(count_referrals(_snapshot(records)))
        for (status, category), count in sorted(counts.items()):
            family.add_metric([status, category], count)
        yield family


def _snapshot(records: Callable[[], Mapping[UUID, StatusRecord]]) -> list[StatusRecord]:
    """The records as they are now; the event loop may change the copy meanwhile."""
    for _ in range(5):
        try:
            return list(records().values())
        except RuntimeError:  # changed size during the copy: try again
            continue
    return []


REFERRALS = ReferralStatusCollector()
REGISTRY.register(REFERRALS)


def count_referrals(records: Iterable[StatusRecord]) -> Counter[tuple[str, str]]:
    """How many referrals stand in each (status, category)."""
    counts: Counter[tuple[str, str]] = Counter()
    for record in records:
        for referral in record.referrals:
            counts[(referral.status.value, referral.category.value)] += 1
    return counts
