"""Table of generation samples as they arrive (one row per prompt per eval)."""
from __future__ import annotations

import ipywidgets as W

from workbench.reports import samples_table_html
from workbench.runs.records import Kind, MetricsRecord


class SamplesTable:
    def __init__(self, limit: int = 12):
        self.limit = limit
        self.records: list[MetricsRecord] = []
        self.widget = W.HTML(samples_table_html([]))
        self.widget.add_class("wb-samples")

    def reset(self) -> None:
        self.records = []
        self.widget.value = samples_table_html([])

    def add(self, rec: MetricsRecord) -> None:
        if rec.kind is Kind.SAMPLE:
            self.records.append(rec)
            self.widget.value = self.html()

    def html(self) -> str:
        return samples_table_html(self.records, self.limit)
