"""The gateway's request log in ClickHouse: one denormalised row per request.

The table's DDL (engine, partitioning, TTL, skip indexes, cluster variant) is printed by
``analytics.schema`` from these fields, because the backend's model DDL cannot declare a
TTL or a Distributed companion; hence ``managed = False``.
"""

from __future__ import annotations

from clickhouse_backend import models

from analytics.query.registry import TABLE, ZERO_UUID


class GatewayAnalytics(models.ClickhouseModel):
    request_id = models.UUIDField(primary_key=True)
    timestamp = models.DateTime64Field(precision=3)
    project_id = models.UUIDField()
    model_id = models.UUIDField()
    endpoint_id = models.UUIDField()
    model_name = models.StringField(low_cardinality=True, default="")
    model_provider = models.StringField(low_cardinality=True, default="")
    client_id = models.StringField(default="")
    user_id = models.StringField(default="")
    client_ip = models.StringField(default="")
    country_code = models.StringField(low_cardinality=True, default="")
    region = models.StringField(low_cardinality=True, default="")
    city = models.StringField(low_cardinality=True, default="")
    latitude = models.Float32Field(default=0)
    longitude = models.Float32Field(default=0)
    user_agent = models.StringField(default="")
    device_type = models.StringField(low_cardinality=True, default="")
    browser = models.StringField(low_cardinality=True, default="")
    browser_version = models.StringField(low_cardinality=True, default="")
    os = models.StringField(low_cardinality=True, default="")
    os_version = models.StringField(low_cardinality=True, default="")
    is_bot = models.BoolField(default=False)
    method = models.StringField(low_cardinality=True, default="")
    path = models.StringField(default="")
    status_code = models.UInt16Field(default=0)
    response_time_ms = models.UInt32Field(default=0)
    gateway_processing_ms = models.UInt32Field(default=0)
    input_tokens = models.UInt32Field(default=0)
    output_tokens = models.UInt32Field(default=0)
    total_tokens = models.UInt32Field(default=0)
    cost = models.Float64Field(default=0)
    request_size = models.UInt32Field(default=0)
    response_size = models.UInt32Field(default=0)
    is_blocked = models.BoolField(default=False)
    block_reason = models.StringField(low_cardinality=True, default="")
    block_rule_id = models.UUIDField(default=str(ZERO_UUID))
    error_type = models.StringField(low_cardinality=True, default="")
    # LLM fields (issue 14). Each default is the column's "absent" value, which is what rows
    # written before the 0004 migration read; metrics exclude it instead of counting zero.
    is_streaming = models.BoolField(default=False)
    ttft_ms = models.UInt32Field(default=0)  # time to first token; 0 = not streamed/unknown
    routing_decision = models.StringField(low_cardinality=True, default="")  # primary, ...
    attempts = models.UInt8Field(default=0)  # provider calls made; 0 = not recorded
    finish_reason = models.StringField(low_cardinality=True, default="")  # stop, length, ...
    cached_input_tokens = models.UInt32Field(default=0)  # prompt-cache reads
    model_version = models.StringField(low_cardinality=True, default="")
    tags = models.MapField(models.StringField(), models.StringField(), default=dict)

    class Meta:
        managed = False
        db_table = TABLE
        verbose_name = "gateway request"
        verbose_name_plural = "gateway requests"

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status_code} at {self.timestamp}"


from analytics.access.models import ApiClient, ProjectAccess, QueryAudit  # noqa: E402,F401
from analytics.requests_log.jobs import ExportJob  # noqa: E402,F401
from analytics.saved_queries import SavedQuery  # noqa: E402,F401
