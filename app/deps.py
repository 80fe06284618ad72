"""Typed dependencies, so handler signatures read in domain terms."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from indexer.store import IndexedSurvey

from .holder import IndexHolder
from .settings import ServiceSettings


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def get_index(request: Request) -> IndexedSurvey:
    holder: IndexHolder = request.app.state.holder
    return holder.get()


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
IndexDep = Annotated[IndexedSurvey, Depends(get_index)]
