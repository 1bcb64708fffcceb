"""The course notebooks are committed with their outputs, and those outputs are what a fresh run gives.

Every notebook is executed again top to bottom (nbclient) and compared with the committed file by
``notebooks/make_notebooks.py``'s :func:`compare`: printed numbers to one unit in their last digit
(the numbers of training and wall-clock cells not at all: they differ between CPU types), figures
present in both. When the code changes the results, regenerate with
``.venv/bin/python notebooks/make_notebooks.py --execute``.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
RUN_LIMIT_S = 300  # the course promises each notebook runs in under 5 minutes on a 2-core CPU


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", NB_DIR / "make_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen = _load_generator()
NAMES = list(gen.NOTEBOOKS)


def _committed(name: str):
    return nbformat.read(NB_DIR / name, as_version=4)


def test_the_committed_notebooks_are_the_generated_ones() -> None:
    assert sorted(p.name for p in NB_DIR.glob("*.ipynb")) == sorted(NAMES)
    for name in NAMES:
        committed, built = _committed(name), gen.build(name)
        assert [(c.cell_type, c.source, c.metadata.get("tags")) for c in committed.cells] == \
            [(c.cell_type, c.source, c.metadata.get("tags")) for c in built.cells], \
            f"{name} is not what make_notebooks.py writes: run it with --execute"


@pytest.mark.parametrize("name", NAMES)
def test_opening_a_notebook_shows_every_result(name: str) -> None:
    """Without running anything: every code cell was executed, in order, without error, and every
    figure cell carries its image."""
    cells = [c for c in _committed(name).cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), "not executed top to bottom"
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [c for c in cells if "figure" in c.metadata.get("tags", [])]
    assert figures, "each notebook shows at least one figure"
    for c in figures:
        assert any("image/png" in o.get("data", {}) for o in c.outputs), f"no image in:\n{c.source[:200]}"
    for c in cells:  # a cell that draws is tagged, so that the image is checked
        if "plt.show()" in c.source or "display(Image" in c.source:
            assert "figure" in c.metadata.get("tags", []), c.source[:200]
    silent = [c for c in cells if not c.outputs and "filterwarnings" not in c.source]
    assert not silent, f"cells that show nothing: {[c.source[:80] for c in silent]}"


def _labelled(src: str) -> bool:
    """A figure cell sets a title and both axis labels (or shows an image with a title)."""
    has_title = "title" in src
    if "imshow" in src or "display(Image" in src:
        return has_title
    return has_title and "xlabel" in src and "ylabel" in src


@pytest.mark.parametrize("name", NAMES)
def test_each_notebook_teaches(name: str) -> None:
    cells = _committed(name).cells
    head = cells[0].source
    assert "## Learning goals" in head and head.count("\n- ") >= 3, "learning goals at the top"
    assert "Prerequisites" in head and "Study time" in head
    number = int(name[:2])
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    found = re.findall(rf"\*\*Exercise {number}\.(\d+)\.\*\*", text)
    assert len(found) >= 2, "at least two exercises"
    solutions = NB_DIR / "solutions" / name.replace(".ipynb", ".py")
    assert f"solutions/{solutions.name}" in text, "the exercises point to their solutions"
    source = solutions.read_text(encoding="utf-8")
    ast.parse(source)
    for k in found:
        assert f"# Exercise {number}.{k}" in source, f"no solution to exercise {number}.{k}"
    for c in cells:
        if c.cell_type == "code" and "figure" in c.metadata.get("tags", []):
            assert _labelled(c.source), f"figure without title or axis labels:\n{c.source[:300]}"


def test_the_docs_page_lists_every_notebook_with_its_measured_time() -> None:
    page = (ROOT / "docs" / "notebooks.md").read_text(encoding="utf-8")
    for name in NAMES:
        row = re.search(rf"\[{re.escape(name)}\]\(\.\./notebooks/{re.escape(name)}\).*\| (\d+) s \|", page)
        assert row, f"docs/notebooks.md has no measured run time for {name}"
        assert int(row.group(1)) < RUN_LIMIT_S
    assert "make_notebooks.py --execute" in page


# ------------------------------------------------------------------ the comparison itself can fail
def _a_committed_cell_with(pattern: str):
    for name in NAMES:
        nb = _committed(name)
        for i, c in enumerate(nb.cells):
            if c.cell_type == "code" and not c.metadata.get("tags") and re.search(pattern, c.source):
                return nb, i
    raise AssertionError(f"no untagged cell matches {pattern!r}")


def test_the_comparison_catches_a_changed_score() -> None:
    nb, i = _a_committed_cell_with(r"lb\.gaps")
    fresh = copy.deepcopy(nb)
    assert gen.compare(nb, fresh) == []
    out = next(o for o in fresh.cells[i].outputs if o.output_type == "stream")
    m = re.search(r"\d\.\d{4}", out.text)
    assert m, out.text
    bumped = f"{float(m.group()) + 0.0005:.4f}"
    out.text = out.text[:m.start()] + bumped + out.text[m.end():]
    problems = gen.compare(nb, fresh)
    assert problems and bumped in problems[0]


def test_the_comparison_catches_a_missing_figure_and_a_changed_source() -> None:
    nb = _committed(NAMES[0])
    fresh = copy.deepcopy(nb)
    i = next(k for k, c in enumerate(fresh.cells) if "figure" in c.metadata.get("tags", []))
    fresh.cells[i].outputs = [o for o in fresh.cells[i].outputs if "image/png" not in o.get("data", {})]
    fresh.cells[i - 1].source += "\n"
    assert len(gen.compare(nb, fresh)) == 2


def test_the_comparison_tolerates_timings_and_rounding() -> None:
    table = "| method | score | wall time (s) |\n|---|---:|---:|\n| zoo://x-v1 | ring-8 | dp | {} | {} |"
    assert gen.same_text(table.format("0.8815", "0.31"), table.format("0.8815", "2.75")) is None
    assert gen.same_text(table.format("0.8815", "0.31"), table.format("0.8816", "0.31")) is None  # last digit
    assert gen.same_text(table.format("0.8815", "0.31"), table.format("0.8825", "0.31")) is not None
    assert gen.same_text("solve time: 83.0 ms", "solve time: 42.2 ms", ["timing"]) is None
    assert gen.same_text("solve time: 83.0 ms", "solve: 42.2 ms", ["timing"]) is not None
    assert gen.same_text("3 nodes moved", "4 nodes moved") is not None
    assert gen.same_text("score 0.640", "score 0.522", ["training"]) is None  # another CPU, another run
    assert gen.same_text("score 0.640", "mean 0.640", ["training"]) is not None  # the text still counts
    assert gen.same_text("<Model at 0x7f3a2b1c9d10>", "<Model at 0x7f00aa11bb22>") is None


# ------------------------------------------------------------------ the fresh runs, two at a time
FRESH_RUN = "test_a_fresh_run_matches_the_committed_outputs"
SOLUTION_RUN = "test_the_solutions_run_and_answer_every_exercise"
WORKERS = 2  # the kernels and solution scripts are single-threaded: two share the 2-core CI machine


def _run_notebook(name: str):
    fresh = gen.build(name)
    return fresh, gen.execute(fresh)


def _run_solution(name: str) -> subprocess.CompletedProcess[str]:
    script = NB_DIR / "solutions" / name.replace(".ipynb", ".py")
    return subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(request):
    """Futures of the notebook executions and solution runs that this session selected, started
    together on a pool of ``WORKERS`` (longest first), so that the slow ones overlap."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("torch")
    wanted = [(item.originalname, item.callspec.params["name"]) for item in request.session.items
              if getattr(item, "originalname", None) in (FRESH_RUN, SOLUTION_RUN) and hasattr(item, "callspec")]
    wanted.sort(key=lambda w: (not w[1].startswith("04"), w[0] != SOLUTION_RUN))  # the long ones first
    with ThreadPoolExecutor(WORKERS) as pool:
        yield {w: pool.submit(_run_notebook if w[0] == FRESH_RUN else _run_solution, w[1]) for w in wanted}


@pytest.mark.parametrize("name", NAMES)
def test_a_fresh_run_matches_the_committed_outputs(name: str, runs) -> None:
    fresh, seconds = runs[(FRESH_RUN, name)].result()
    problems = gen.compare(_committed(name), fresh)
    assert not problems, (f"{name} is stale; regenerate with `.venv/bin/python notebooks/make_notebooks.py "
                          f"--execute`:\n" + "\n".join(problems[:10]))
    assert seconds < RUN_LIMIT_S * WORKERS, f"{name} took {seconds:.0f} s, sharing the CPUs with one other run"


# ------------------------------------------------------------------ the solutions
def _solution_params():
    out = []
    for name in NAMES:
        marks = [pytest.mark.expensive] if name.startswith("04") else []  # two short training runs
        out.append(pytest.param(name, marks=marks, id=name.replace(".ipynb", "")))
    return out


@pytest.mark.parametrize("name", _solution_params())
def test_the_solutions_run_and_answer_every_exercise(name: str, runs) -> None:
    number = int(name[:2])
    text = "\n".join(c.source for c in _committed(name).cells if c.cell_type == "markdown")
    exercises = re.findall(rf"\*\*Exercise {number}\.(\d+)\.\*\*", text)
    done = runs[(SOLUTION_RUN, name)].result()
    assert done.returncode == 0, done.stderr[-3000:]
    for k in exercises:  # each answer prints lines that start with its number
        assert re.search(rf"^{number}\.{k}\b", done.stdout, re.MULTILINE), f"no answer printed for {number}.{k}"
