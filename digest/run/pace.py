"""``smtp.rate``: one sending pace for the whole run, every worker process and machine
together, kept in the database (:class:`digest.store.queue_state.Pace`); a relay's
throttling answer (421, 451) holds everyone back, not only the connection that got it."""

from __future__ import annotations

import asyncio
import logging

from digest.errors import DeliveryError
from digest.store import Store
from digest.store.queue_state import Pace

log = logging.getLogger("digest.pace")

#: Seconds nobody sends after a relay answered 421 or 451 (each such answer moves it on).
THROTTLE_HOLD = 5.0
#: SMTP replies by which a relay asks its clients to slow down (RFC 5321 §4.2.3).
THROTTLING = frozenset({421, 451})


class SharedPace:
    """A :class:`digest.deliver.smtp.Pacer` at ``rate`` messages per second."""

    def __init__(self, store: Store, rate: float, hold: float = THROTTLE_HOLD) -> None:
        self.pace = Pace(store.engine)
        self.interval = 1.0 / rate
        self.hold = hold

    async def wait(self) -> None:
        """Take the run's next sending slot and sleep until it comes."""
        delay = await asyncio.to_thread(self.pace.take, self.interval)
        if delay > 0:
            await asyncio.sleep(delay)

    async def throttled(self, error: DeliveryError) -> None:
        """A relay's throttling answer: nobody sends for :attr:`hold` seconds."""
        if error.code in THROTTLING:
            log.warning("relay throttling (%s): every sender waits %.0f s", error.code, self.hold)
            await asyncio.to_thread(self.pace.hold, self.hold)
