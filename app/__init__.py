"""The FastAPI service and the static explorer page. Nothing imports `app`."""
