"""JSON for the controller: orjson behind Flask's JSON provider and the batched SQL parameters.

The worker API's hot requests are JSON in and JSON out, 20 records at a time,
and the batched writes send one JSON parameter per statement
(``json_to_recordset``).  orjson encodes and decodes those several times
faster than the standard library; the output is the same JSON (keys sorted
like Flask's default provider; datetimes as ISO 8601).
"""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS


def dumps(value: Any) -> str:
    """Compact JSON text (enums as their value, datetimes as ISO 8601)."""
    return orjson.dumps(value, default=_default).decode()


def _default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson underneath; falls back to Flask's own
    conversions (dataclasses, decimals, HTTP dates) for what orjson lacks."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # indent, separators...: the caller wants the standard library's options
            return super().dumps(obj, **kwargs)
        return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:
            return super().loads(s, **kwargs)
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any):
        obj = self._prepare_response_obj(args, kwargs)
        body = orjson.dumps(obj, default=self.default, option=_OPTIONS)
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)
