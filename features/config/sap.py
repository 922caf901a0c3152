"""Settings of the SAP extract adapter (`paydelay sap`): which document types, reason codes and
statuses mean what in your system. Every default is SAP's standard customising; change the ones
your company changed. The mapping they feed is documented in docs/sap_extracts.md.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from features.config.base import Section


class SapConfig(Section):
    # BKPF-BLART: which document types are which postings. A document type in the extract that is
    # in none of these lists is quarantined ("unknown_document_type"), never guessed.
    invoice_document_types: tuple[str, ...] = ("RV", "DR")
    credit_memo_document_types: tuple[str, ...] = ("DG", "G2")
    payment_document_types: tuple[str, ...] = ("DZ",)
    # Clearing / transfer postings (F-32, F.13, residual items): they carry no event of their own
    # besides the residual items they open, but they are what clears an invoice.
    clearing_document_types: tuple[str, ...] = ("AB",)
    # Write-off: a final clearing document of one of these types, or one with a line whose
    # reason code BSEG-RSTGR is in write_off_reason_codes, is "invoice written off".
    write_off_document_types: tuple[str, ...] = ()
    write_off_reason_codes: tuple[str, ...] = ("W01",)
    # Dispute case status (SCMG_T_CASE_ATTR-STAT_ORDERNO) values meaning "resolved"; a change
    # document into one of them (from a value not in the list) is "dispute case resolved".
    dispute_resolved_statuses: tuple[str, ...] = ("30", "40")
    # A promise is broken when the invoice is still open `promise_tolerance_days` days after the
    # promised date (the tolerance of your collection strategy; 0 = the day after).
    promise_tolerance_days: int = Field(0, ge=0, le=365)
    # MHND-LAUFD is a date: the time of day your dunning run is scheduled at (HH:MM:SS).
    dunning_run_time: str = "00:00:00"
    dunning_user: str | None = None  # user_name of dunning events (MHND carries none)
    # KNA1-KTOKD -> customer segment name; account groups not listed keep their key.
    account_group_segments: dict[str, str] = {}
    # Company code -> local currency key (T001-WAERS), used when T001 is not exported.
    company_currencies: dict[str, str] = {}
    # KNKK-KKBER to read the risk category and credit limit from (None: the first per customer).
    credit_control_area: str | None = None
    # Case id of the event log: the invoice document number, or with company code (and year)
    # where number ranges repeat across company codes / fiscal years.
    invoice_id: Literal["BELNR", "BUKRS-BELNR", "BUKRS-BELNR-GJAHR"] = "BELNR"
    # BKPF-CPUTM gives the time of day of a posting entered on its posting date (CPUDT = BUDAT);
    # False puts every posting at 00:00 of BUDAT.
    time_of_day_from_entry: bool = True
    source_system: str | None = None  # LOGSYS; else the EXTRACT table's, else "SAP"
    extract_time: str | None = None  # ISO time of the extract; else the EXTRACT table's

    @field_validator("dunning_run_time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d", value):
            raise ValueError(f"dunning_run_time {value!r}: use HH:MM:SS")
        return value
