"""Failed credential checks per client address, so that an address that keeps guessing is
refused before each guess costs a worker a slow password hash check."""

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

# Addresses remembered per worker, the least recent dropped first. Each costs about
# 250 bytes plus 32 per failure remembered (at most max_failures): at the bound, with 10
# failures each, about 2.4 MB per worker.
MAX_ADDRESSES = 4096


class FailedCredentials:
    """Times of the failed checks of each address within the last window_seconds; an address
    with max_failures of them waits until the oldest leaves the window."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float = 60,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.max_addresses = max_addresses
        self.clock = clock
        self._times: OrderedDict[str | None, list[float]] = (
            OrderedDict()
        )  # address -> failure times, oldest first
        self._lock = threading.Lock()  # a gthread worker's threads share it

    def __len__(self) -> int:
        return len(self._times)

    def seconds_to_wait(self, address: str | None) -> int:
        """0 while the address may be checked; else whole seconds until it may again."""
        with self._lock:
            return self._seconds_to_wait(address)

    def _seconds_to_wait(self, address: str | None) -> int:
        times = self._recent(address)
        if len(times) < self.max_failures:
            return 0
        # An address that keeps knocking stays at the recent end, so other addresses'
        # failures do not easily push it out.
        self._times.move_to_end(address)
        return max(1, math.ceil(times[0] + self.window_seconds - self.clock()))

    def record_failure(self, address: str | None) -> bool:
        """Count a failed check; True when it makes the address wait."""
        with self._lock:
            return self._record_failure(address)

    def _record_failure(self, address: str | None) -> bool:
        times = self._recent(address)
        times.append(self.clock())
        del times[: -self.max_failures]
        self._times[address] = times
        self._times.move_to_end(address)
        while len(self._times) > self.max_addresses:
            self._times.popitem(last=False)
        return len(times) == self.max_failures

    def _recent(self, address: str | None) -> list[float]:
        """The address's failure times within the window; an address without any is
        forgotten."""
        times = self._times.get(address)
        if times is None:
            return []
        since = self.clock() - self.window_seconds
        recent = [moment for moment in times if moment > since]
        if not recent:
            del self._times[address]
        elif len(recent) < len(times):
            self._times[address] = recent
        return recent
