"""The dashboard's answers: JSON (fast for large tables) and one-line errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response

__all__ = ["attachment", "error_response", "json_response", "safe_filename"]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON without FastAPI's per-value encoder (10,000 archive rows stay fast)."""
    body = json.dumps(data, separators=(",", ":"), default=str, allow_nan=False)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, message: str) -> Response:
    """An error as the page shows it: ``{"error": MESSAGE}``."""
    return json_response({"error": message}, status)


def attachment(filename: str) -> dict[str, str]:
    """The header that makes a browser download an answer as ``filename`` (ASCII)."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def safe_filename(name: str) -> str:
    """An ASCII file name for a Content-Disposition header."""
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in name) or "run"
