"""Typed dependencies, so handler signatures read in domain terms.

Both are `async`: FastAPI runs every sync dependency in a worker thread, and these are attribute
reads once the service has loaded a version, so a thread hop would cost more than the work. The
one slow case, the first load of a version, goes to the thread pool.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from indexer.store import IndexedSurvey

from .holder import IndexHolder
from .settings import ServiceSettings


async def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


async def get_index(request: Request) -> IndexedSurvey:
    holder: IndexHolder = request.app.state.holder
    if holder.loaded:
        return holder.get()
    return await run_in_threadpool(holder.get)


async def get_decode_slots(request: Request) -> asyncio.Semaphore:
    """The app's bound on uploads decoding at once (ServiceSettings.max_concurrent_decodes)."""
    return request.app.state.decode_slots


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
IndexDep = Annotated[IndexedSurvey, Depends(get_index)]
DecodeSlotsDep = Annotated[asyncio.Semaphore, Depends(get_decode_slots)]
