"""Send ClickHouse models (and ClickHouse-only migrations) to the ``clickhouse`` alias."""

from __future__ import annotations

from typing import Any

from clickhouse_backend import models as ch_models

CLICKHOUSE_ALIAS = "clickhouse"


def _is_clickhouse_model(model: Any) -> bool:
    return model is not None and issubclass(model, ch_models.ClickhouseModel)


class ClickHouseRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return CLICKHOUSE_ALIAS if _is_clickhouse_model(model) else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return CLICKHOUSE_ALIAS if _is_clickhouse_model(model) else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool:
        if hints.get("clickhouse"):
            return db == CLICKHOUSE_ALIAS
        model = hints.get("model")
        if model is not None:
            return (db == CLICKHOUSE_ALIAS) == _is_clickhouse_model(model)
        # Operations without a model (RunPython/RunSQL without hints) run on default only.
        return db != CLICKHOUSE_ALIAS
