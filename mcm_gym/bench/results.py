"""Results files: one row per (graph, hardware, method, seed, budget) cell, written atomically and
merged under a file lock, read back, and re-checked (:func:`validate_record`).

A row holds ``FIELDS``; ``partition``, ``trace`` and ``trace_time`` are JSON text in the CSV and
lists once read; ``gap_to_best`` and ``gap_to_bound`` compare the score with the leaderboard
(:mod:`mcm_gym.bench.leaderboard`; empty, read as None, for an instance it does not hold).
``mcm-gym partition --out`` writes the same fields as one JSON line (a *record*); :func:`read_records`
reads either kind of file.
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
from mcm_gym.bench.leaderboard import gaps
from mcm_gym.core.graph import GraphError
from mcm_gym.core.hardware import HardwareError, get_hardware
from mcm_gym.core.problem import Problem
from mcm_gym.instances.catalog import load_graph
from mcm_gym.search.base import SearchResult

__all__ = ["FIELDS", "result_row", "row_key", "write_rows", "merge_rows", "read_rows", "decode_row",
           "read_records", "record_problem", "validate_record", "ResultsFileError"]

FIELDS = ["graph_id", "hardware_id", "method", "seed", "budget", "score", "throughput", "bottleneck",
          "lower_bound", "evaluations", "wall_time", "partition", "trace", "trace_time", "gap_to_best",
          "gap_to_bound"]
#: Columns a results file may lack (files written before they existed); read as None / [].
OPTIONAL = ("trace_time", "gap_to_best", "gap_to_bound")


def result_row(res: SearchResult, budget: int, problem: Problem | None = None) -> dict[str, Any]:
    """The results row of a search result run at ``budget`` (partition and traces as JSON text).
    With ``problem``, ``gap_to_best`` / ``gap_to_bound`` against the leaderboard (fractions; empty
    where the leaderboard does not hold the instance)."""
    g = gaps(problem, res.score) if problem is not None and res.partition is not None else None
    return {"graph_id": res.graph_id, "hardware_id": res.hardware_id, "method": res.method,
            "seed": res.seed, "budget": budget, "score": res.score, "throughput": res.throughput,
            "bottleneck": res.bottleneck, "lower_bound": res.lower_bound,
            "evaluations": res.evaluations, "wall_time": res.wall_time,
            "partition": json.dumps(None if res.partition is None else res.partition.tolist()),
            "trace": json.dumps([round(x, 6) for x in res.trace]),
            "trace_time": json.dumps([round(x, 3) for x in res.trace_time]),
            "gap_to_best": round(g["gap_to_best"], 6) if g else "",
            "gap_to_bound": round(g["gap_to_bound"], 6) if g else ""}


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


class ResultsFileError(ValueError):
    """A results CSV that cannot be read: a missing column or a malformed row (named by file and line)."""


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a results CSV with numbers, partition and trace decoded; raises
    :class:`ResultsFileError` naming the file and line of the first bad row."""
    out = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in FIELDS if k not in OPTIONAL and k not in (reader.fieldnames or [])]
        if missing:
            raise ResultsFileError(f"{path}: not a results file: no column(s) {', '.join(missing)}")
        for r in reader:
            try:
                rec: dict[str, Any] = dict(r)
                if None in rec or any(rec[k] is None for k in FIELDS if k in rec):
                    raise ValueError("wrong number of fields")
                for k in ("score", "throughput", "bottleneck", "lower_bound", "wall_time"):
                    rec[k] = float(rec[k])
                for k in ("seed", "budget", "evaluations"):
                    rec[k] = int(rec[k])
                for k in ("gap_to_best", "gap_to_bound"):
                    rec[k] = float(rec[k]) if rec.get(k) not in (None, "") else None
                out.append(decode_row(rec))
            except (ValueError, TypeError) as exc:
                raise ResultsFileError(f"{path}:{reader.line_num}: bad row ({exc})") from None
    return out




def read_records(path: str | os.PathLike[str]) -> list[Any]:
    """Result records of a bench CSV (``.csv``) or of a JSON-lines file (``mcm-gym partition --out``),
    one per line; a line that is not JSON raises ``ValueError`` naming the file and line. Records are
    returned as parsed (:func:`validate_record` says what is wrong with one that is not an object)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p} is a directory; give a results file (.csv or JSON lines)")
    if str(path).endswith(".csv"):
        return read_rows(path)
    out: list[Any] = []
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{p}:{i}: not a JSON record ({exc.msg} at column {exc.colno}); "
                                 f"is the line truncated?") from None
    return out


def record_problem(rec: dict[str, Any]) -> Problem:
    """The problem a result record was made on: its graph and hardware by id, or by the files it
    records (``graph_file``, ``hardware_file``: written for graphs and hardware loaded from files)."""
    return Problem(load_graph(_source(rec, "graph")), get_hardware(_source(rec, "hardware")))


def _source(rec: dict[str, Any], what: str) -> str:
    file = rec.get(f"{what}_file")
    if file and not Path(file).exists():
        raise (GraphError if what == "graph" else HardwareError)(
            f"the record's {what} file {file} is gone (and {rec[f'{what}_id']!r} is not a known id)")
    return str(file or rec[f"{what}_id"])


def validate_record(rec: dict[str, Any], tol: float = 1e-9) -> tuple[bool, str]:
    """Re-score one result record; True when the partition is valid and the score matches."""
    if not isinstance(rec, dict):
        return False, f"a record is a JSON object with graph_id, hardware_id, partition, score; got {rec!r:.60}"
    for k in ("graph_id", "hardware_id", "partition", "score"):
        if k not in rec:
            return False, f"record is missing field {k!r}"
    try:
        score_rec = float(rec["score"])
    except (TypeError, ValueError):
        return False, f"score {rec['score']!r} is not a number"
    if rec["partition"] is None:
        return score_rec == 0, "no partition (score must be 0)"
    part = rec["partition"]
    if not (isinstance(part, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in part)):
        return False, "partition must be a list of integer chip indices"
    try:
        problem = record_problem(rec)
    except (GraphError, HardwareError) as exc:
        return False, str(exc)
    g = problem.graph
    if len(part) != g.n:
        return False, (f"partition has {len(part)} entries but graph {rec['graph_id']!r} has {g.n} nodes "
                       f"(was the record made on another graph?)")
    p = np.asarray(part, dtype=np.int64)
    try:
        violations = problem.check(p)
    except ValueError as exc:
        return False, f"bad partition: {exc}"
    if violations:
        return False, f"invalid partition: {violations[0]}"
    score = float(problem.evaluate(p).score[0])
    if abs(score - score_rec) > tol * max(1.0, abs(score)):
        return False, f"score {score:.6f} differs from recorded {score_rec:.6f}"
    return True, f"ok: score {score:.6f}"
