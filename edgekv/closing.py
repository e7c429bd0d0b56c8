"""``async with`` for anything that has an ``async close()``.

Theory of operation: the client, the bindings and the control client all own
channels that must be closed; each inherits :class:`AsyncClosing`, so that
``async with X(...) as x:`` closes ``x`` however the block ends.
"""

from __future__ import annotations

import abc
from typing import Self


class AsyncClosing(abc.ABC):
    @abc.abstractmethod
    async def close(self) -> None:
        """Release what the object holds; safe to call more than once."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
