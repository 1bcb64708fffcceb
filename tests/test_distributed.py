"""Ray scale-out (optional extra): same rows and CSV as the serial bench, survives a dead worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from mcm_gym.bench import read_rows, row_key, run_bench, run_bench_ray, validate_record  # noqa: E402
from mcm_gym.search.heuristics import GreedyBalancer  # noqa: E402

GRAPHS = ["tiny://attention-v1", "tiny://diamond-v1"]
HARDWARE = ["ring-4"]
METHODS = ["greedy", "random"]
SEEDS = [0, 1]
BUDGET = 8


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster (2 CPUs) for the whole file: start-up takes seconds."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("wall_time", "trace_time")} for r in rows]


def _crashing_searcher(marker: Path) -> GreedyBalancer:
    """A greedy searcher whose worker process dies (``os._exit``) the first time it runs; the class
    is local, so cloudpickle ships it by value to the Ray workers."""

    class CrashOnce(GreedyBalancer):
        name = "greedy"

        def _run(self, problem, tr, rng):
            try:  # atomic: of two workers starting at once, only one crashes
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os._exit(1)
            super()._run(problem, tr, rng)

    return CrashOnce()


def test_graphs_exist():
    from mcm_gym.instances.catalog import load_graph

    for g in GRAPHS:
        assert load_graph(g).id == g


def test_ray_rows_equal_serial_and_csv_replays(cluster, tmp_path):
    serial = run_bench(GRAPHS, HARDWARE, METHODS, SEEDS, BUDGET, out_csv=tmp_path / "serial.csv")
    out = tmp_path / "results.csv"
    seen = []
    rows = run_bench_ray(GRAPHS, HARDWARE, METHODS, SEEDS, BUDGET, out_csv=out,
                         progress=lambda i, n, c: seen.append((i, n, c)))
    assert ray.is_initialized()  # the fixture's session is reused, not shut down
    assert len(rows) == len(serial) == 8 and rows.failures == []
    assert _strip(rows) == _strip(serial)
    assert [i for i, _, _ in seen] == list(range(1, 9)) and {n for _, n, _ in seen} == {8}
    # same replayable CSV format: read back equal (the file holds rows in the order they finished),
    # every row re-scores
    back = read_rows(out)
    assert _strip(sorted(back, key=row_key)) == _strip(sorted(read_rows(tmp_path / "serial.csv"), key=row_key))
    assert out.read_text().splitlines()[0].startswith("graph_id,hardware_id,method,seed,budget,score")
    for rec in back:
        ok, msg = validate_record(rec)
        assert ok, msg
    # resume: every cell is in the CSV, nothing runs again (wall times are the recorded ones)
    again = run_bench_ray(GRAPHS, HARDWARE, METHODS, SEEDS, BUDGET, out_csv=out)
    recorded = {row_key(r): r["wall_time"] for r in back}
    assert [r["wall_time"] for r in again] == [recorded[row_key(r)] for r in again]


def test_killed_worker_is_retried(cluster, tmp_path):
    marker = tmp_path / "crashed"
    methods = [_crashing_searcher(marker), "random"]
    serial = run_bench(GRAPHS, HARDWARE, ["greedy", "random"], SEEDS, BUDGET)
    out = tmp_path / "results.csv"
    rows = run_bench_ray(GRAPHS, HARDWARE, methods, SEEDS, BUDGET, out_csv=out, max_retries=2)
    assert marker.exists(), "the crashing searcher never ran"
    assert rows.failures == []
    assert _strip(rows) == _strip(serial)
    assert len(read_rows(out)) == len(serial)


def test_failure_without_retries_is_reported_not_fatal(cluster, tmp_path):
    marker = tmp_path / "crashed"
    with pytest.warns(RuntimeWarning, match="failed after 0 retries"):
        rows = run_bench_ray(GRAPHS[:1], HARDWARE, [_crashing_searcher(marker)], SEEDS, BUDGET,
                             out_csv=tmp_path / "r.csv", max_retries=0)
    assert marker.exists()
    assert len(rows) + len(rows.failures) == len(SEEDS)
    assert len(rows.failures) == 1
    cell, msg = rows.failures[0]
    assert cell.method == "greedy" and "Crashed" in msg, msg
    assert len(read_rows(tmp_path / "r.csv")) == len(rows)


def test_cli_bench_on_ray(cluster, tmp_path, capsys):
    from mcm_gym.cli import main

    out = tmp_path / "b"
    assert main(["bench", "--graphs", "tiny://attention-v1", "--hardware", "ring-4", "--methods", "greedy",
                 "--budget", "3", "--seeds", "0", "1", "--ray", "--out", str(out)]) == 0
    assert "| greedy |" in capsys.readouterr().out
    assert main(["validate", str(out / "results.csv")]) == 0


def _serial_bench_into(csv_path: str) -> None:
    run_bench(GRAPHS, HARDWARE, ["greedy", "balanced"], [0, 1, 2, 3], BUDGET, out_csv=csv_path)


def test_serial_and_ray_filling_one_file_keep_every_row(cluster, tmp_path):
    """A serial run in another process and a Ray run here write one results file at the same time:
    both merge each finished row under the file's lock, so no row is lost."""
    import multiprocessing as mp

    csv_path = str(tmp_path / "results.csv")
    proc = mp.get_context("spawn").Process(target=_serial_bench_into, args=(csv_path,))
    proc.start()
    rows = run_bench_ray(GRAPHS, HARDWARE, ["random", "sa"], [0, 1, 2, 3], BUDGET, out_csv=csv_path)
    proc.join(300)
    assert proc.exitcode == 0 and rows.failures == []
    got = sorted((r["method"], r["graph_id"], r["seed"]) for r in read_rows(csv_path))
    assert got == sorted((m, g, s) for m in ("greedy", "balanced", "random", "sa") for g in GRAPHS for s in range(4))
