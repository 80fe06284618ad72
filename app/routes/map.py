"""Map routes (placeholder router; filled in by its own change)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["map"])
