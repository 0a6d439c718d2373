"""A raw-SQL query for Grafana's PostgreSQL data source, in grafana-foundation-sdk's terms.

The SDK has builders for many data sources' queries but none for the SQL ones, so this module adds
one: :class:`SqlQuery` is a variant of the SDK's generic ``Dataquery`` (what panel ``targets`` hold)
and :class:`SqlQueryBuilder` its builder. It emits exactly what Grafana's code editor saves::

    {"datasource": {"type": ..., "uid": ...}, "editorMode": "code", "format": "time_series",
     "rawQuery": true, "rawSql": "...", "refId": "A"}

Importing the module registers the variant for ``grafana-postgresql-datasource``, so the SDK's
``from_json`` reads such targets back as :class:`SqlQuery`.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.common import DataSourceRef

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "urbanpulse-pg"

QueryFormat = Literal["time_series", "table"]


def datasource_ref() -> DataSourceRef:
    """The reference to urbanpulse's PostgreSQL data source, as panels and targets carry it."""
    return DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class SqlQuery(cogvariants.Dataquery):
    """One SQL target of a panel."""

    ref_id: str
    raw_sql: str
    format_val: QueryFormat
    datasource: DataSourceRef | None
    hide: bool | None

    def __init__(
        self,
        ref_id: str = "A",
        raw_sql: str = "",
        format_val: QueryFormat = "time_series",
        datasource: DataSourceRef | None = None,
        hide: bool | None = None,
    ) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val = format_val
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "rawSql": self.raw_sql,
            "format": self.format_val,
            "rawQuery": True,
            "editorMode": "code",
        }
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        datasource = data.get("datasource")
        return cls(
            ref_id=str(data.get("refId", "A")),
            raw_sql=str(data.get("rawSql", "")),
            format_val="table" if data.get("format") == "table" else "time_series",
            datasource=DataSourceRef.from_json(datasource) if isinstance(datasource, dict) else None,
            hide=data.get("hide"),
        )


class SqlQueryBuilder(cogbuilder.Builder[SqlQuery]):
    """Builder of :class:`SqlQuery`, in the SDK's fluent style; the data source defaults to urbanpulse's."""

    _internal: SqlQuery

    def __init__(self) -> None:
        self._internal = SqlQuery(datasource=datasource_ref())

    def build(self) -> SqlQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def raw_sql(self, raw_sql: str) -> Self:
        self._internal.raw_sql = raw_sql
        return self

    def format(self, format_val: QueryFormat) -> Self:
        self._internal.format_val = format_val
        return self

    def datasource(self, datasource: DataSourceRef) -> Self:
        self._internal.datasource = datasource
        return self

    def hide(self, hide: bool) -> Self:
        self._internal.hide = hide
        return self


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=SqlQuery.from_json)
)
