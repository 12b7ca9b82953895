"""The bad-input battery of issue #10 as one table: each entry builds its inputs in a fresh folder and names the
command line to run, the culprit its one-line message must name, and where nothing may appear.

Shared by ``test_bad_input_battery.py`` and ``benchmarks/tools/reliability_table.py`` (which writes the table of results
into ``benchmarks/RESULTS.md``). The entries live in ``battery_*_entries.py``, one module per group of commands;
the machinery in ``battery_core.py``.
"""

from __future__ import annotations

from battery_core import (
    PREDICT,
    TEMP_NAME,
    BadInput,
    Exploit,
    Invocation,
    Outcome,
    Workspace,
    check,
    permissions_ignored,
    replace_volume,
    run_entry,
    write_markers,
)
from battery_data_entries import DATA_ENTRIES
from battery_evaluate_entries import EVALUATE_ENTRIES
from battery_import_entries import IMPORT_ENTRIES
from battery_predict_entries import PREDICT_ENTRIES
from battery_train_entries import TRAIN_ENTRIES

BATTERY: list[BadInput] = [*TRAIN_ENTRIES, *PREDICT_ENTRIES, *EVALUATE_ENTRIES, *DATA_ENTRIES, *IMPORT_ENTRIES]

__all__ = ["BATTERY", "PREDICT", "TEMP_NAME", "BadInput", "Exploit", "Invocation", "Outcome", "Workspace", "check",
           "permissions_ignored", "replace_volume", "run_entry", "write_markers"]
