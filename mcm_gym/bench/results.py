"""Results files: one row per (graph, hardware, method, seed, budget) cell, written atomically and
merged under a file lock, read back, and re-checked (:func:`validate_record`).

A row holds ``FIELDS``; ``partition``, ``trace`` and ``trace_time`` are JSON text in the CSV and
lists once read. ``mcm-gym partition --out`` writes the same fields as one JSON line (a *record*);
:func:`read_records` reads either kind of file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mcm_gym._io import atomic_write_text, file_lock
from mcm_gym.core.hardware import get_hardware
from mcm_gym.core.problem import Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.search.base import SearchResult

__all__ = ["FIELDS", "result_row", "row_key", "write_rows", "merge_rows", "read_rows", "decode_row",
           "read_records", "record_problem", "validate_record"]

FIELDS = ["graph_id", "hardware_id", "method", "seed", "budget", "score", "throughput", "bottleneck",
          "lower_bound", "evaluations", "wall_time", "partition", "trace", "trace_time"]


def result_row(res: SearchResult, budget: int) -> dict[str, Any]:
    """The results row of a search result run at ``budget`` (partition and traces as JSON text)."""
    return {"graph_id": res.graph_id, "hardware_id": res.hardware_id, "method": res.method,
            "seed": res.seed, "budget": budget, "score": res.score, "throughput": res.throughput,
            "bottleneck": res.bottleneck, "lower_bound": res.lower_bound,
            "evaluations": res.evaluations, "wall_time": res.wall_time,
            "partition": json.dumps(None if res.partition is None else res.partition.tolist()),
            "trace": json.dumps([round(x, 6) for x in res.trace]),
            "trace_time": json.dumps([round(x, 3) for x in res.trace_time])}


def row_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a row: graph, hardware, method, seed, budget."""
    return (r["graph_id"], r["hardware_id"], r["method"], int(r["seed"]), int(r["budget"]))


def write_rows(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def merge_rows(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    """Add (or replace, by graph, hardware, method, seed and budget) ``rows`` in the CSV at ``path``:
    re-read under a file lock and rewritten atomically, so that several processes can fill one
    results file without losing each other's rows."""
    path = Path(path)
    with file_lock(path):
        table = {row_key(r): r for r in read_rows(path)} if path.exists() else {}
        for r in rows:
            table[row_key(r)] = r
        write_rows(path, [_encoded(r) for r in table.values()])


def _encoded(r: dict[str, Any]) -> dict[str, Any]:
    """A row as :func:`write_rows` expects it (partition and traces as JSON text)."""
    return {k: (json.dumps(v) if k in ("partition", "trace", "trace_time") and not isinstance(v, str) else v)
            for k, v in r.items()}


def decode_row(r: dict[str, Any]) -> dict[str, Any]:
    """A copy of a results row with ``partition``, ``trace`` and ``trace_time`` decoded from JSON text
    (rows fresh from :func:`run_bench` hold text, rows from :func:`read_rows` lists);
    ``trace_time`` is ``[]`` where the row has none (files written before it existed)."""
    r = dict(r)
    for k in ("partition", "trace", "trace_time"):
        if isinstance(r.get(k), str):
            r[k] = json.loads(r[k] or "null")
    r["trace_time"] = r.get("trace_time") or []
    return r


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a results CSV with numbers, partition and trace decoded."""
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            rec: dict[str, Any] = dict(r)
            for k in ("score", "throughput", "bottleneck", "lower_bound", "wall_time"):
                rec[k] = float(rec[k])
            for k in ("seed", "budget", "evaluations"):
                rec[k] = int(rec[k])
            out.append(decode_row(rec))
    return out




def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Result records of a bench CSV (``.csv``) or of a JSON-lines file (``mcm-gym partition --out``)."""
    if str(path).endswith(".csv"):
        return read_rows(path)
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


def record_problem(rec: dict[str, Any]) -> Problem:
    """The problem a result record was made on (its graph id and hardware id)."""
    return Problem(load_graph(rec["graph_id"]), get_hardware(rec["hardware_id"]))


def validate_record(rec: dict[str, Any], tol: float = 1e-9) -> tuple[bool, str]:
    """Re-score one result record; True when the partition is valid and the score matches."""
    for k in ("graph_id", "hardware_id", "partition", "score"):
        if k not in rec:
            return False, f"record is missing field {k!r}"
    if rec["partition"] is None:
        return rec["score"] == 0, "no partition (score must be 0)"
    problem = record_problem(rec)
    p = np.asarray(rec["partition"])
    try:
        violations = problem.check(p)
    except ValueError as exc:
        return False, f"bad partition: {exc}"
    if violations:
        return False, f"invalid partition: {violations[0]}"
    score = float(problem.evaluate(p).score[0])
    if abs(score - float(rec["score"])) > tol * max(1.0, abs(score)):
        return False, f"score {score:.6f} differs from recorded {rec['score']:.6f}"
    return True, f"ok: score {score:.6f}"
