#!/usr/bin/env python
"""Regenerate the bundled BERT graph (``graphs/bert-base.json``) from the real model definition.

Builds ``transformers.BertModel`` from a ``BertConfig`` only (random init, seed 0; no weights are
downloaded), exports it with :func:`mcm_gym.instances.importers.from_torch` and writes an ``mcm-graph/1``
JSON file atomically, one node / edge per line so that diffs stay readable.

Only ``input_ids`` of shape ``(batch, seq_len)`` are passed: token types default to the model's
zero buffer and the attention mask to all-ones (no padding). Passing an explicit
``attention_mask`` adds ~10 mask-plumbing nodes (casts, ``_assert_tensor_metadata``, indexing)
and a second input, without changing FLOPs or weights, so we leave it out.

Units in the output: FLOPs (multiply-add = 2) and bytes.

Usage::

    python graphs/make_bert.py                    # -> graphs/bert-base.json
    python graphs/make_bert.py --variant large    # -> graphs/bert-large.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))

# BertConfig keyword overrides per variant; base is BertConfig()'s defaults.
VARIANTS: dict[str, dict[str, int]] = {
    "base": {},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
              "intermediate_size": 4096},
}


def dumps_graph(doc: dict[str, Any]) -> str:
    """Serialise an ``mcm-graph/1`` document with one node and one edge per line."""
    lines = ["{"]
    head = [k for k in doc if k not in ("nodes", "edges")]
    for k in head:
        value = json.dumps(doc[k], indent=1) if k == "metadata" else json.dumps(doc[k])
        lines.append(f" {json.dumps(k)}: {value.replace(chr(10), chr(10) + ' ')},")
    for k in ("nodes", "edges"):
        items = doc[k]
        lines.append(f' "{k}": [')
        lines.extend(f"  {json.dumps(it)}{',' if i + 1 < len(items) else ''}"
                     for i, it in enumerate(items))
        lines.append(" ]," if k == "nodes" else " ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if json.loads(text) != doc:  # guard the hand-rolled layout
        raise AssertionError("dumps_graph produced a document that does not round-trip")
    return text


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; use the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build(variant: str, seq_len: int, batch: int, dtype: str) -> dict[str, Any]:
    """Build BERT-``variant`` from its config and import it; returns the graph document."""
    import torch
    from transformers import BertConfig, BertModel

    from mcm_gym.instances.importers.torch_export import from_torch

    overrides = VARIANTS[variant]
    config = BertConfig(**overrides)
    if seq_len > config.max_position_embeddings:
        raise SystemExit(f"--seq-len must be <= {config.max_position_embeddings}")
    torch.manual_seed(0)
    model = BertModel(config)
    input_ids = torch.randint(0, config.vocab_size, (batch, seq_len), dtype=torch.long)
    args = ", ".join(f"{k}={v}" for k, v in overrides.items())
    doc = from_torch(
        model,
        (input_ids,),
        dtype=dtype,
        name=f"bert-{variant}",
        graph_id=f"zoo://bert-{variant}-v1",
        metadata={
            "source": f"transformers.BertModel(BertConfig({args}))",
            "generator": "graphs/make_bert.py "
                         f"--variant {variant} --seq-len {seq_len} --batch {batch} --dtype {dtype}",
            "inputs": "input_ids only (no attention_mask / token_type_ids)",
            "batch": batch,
            "seq_len": seq_len,
            # The preset this graph is meant for (feasible there; the memory constraint binds).
            **({"default_hardware": "ring-8"} if variant == "base" else {}),
        },
    )
    totals = doc["metadata"]["totals"]
    flops, ref = totals["flops"], totals["flop_counter_flops"]
    assert abs(flops - ref) <= 1e-3 * max(ref, 1), f"node FLOPs {flops} != counter FLOPs {ref}"
    assert totals["weight_bytes"] == totals["param_bytes"], (
        f"weight_bytes {totals['weight_bytes']} != param_bytes {totals['param_bytes']}")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="output path (default: graphs/bert-<variant>.json)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=1, help="sequences per batch")
    parser.add_argument("--dtype", default="bfloat16", help="torch floating dtype name")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="base")
    ns = parser.parse_args(argv)
    if ns.seq_len < 1 or ns.batch < 1:
        parser.error("--seq-len and --batch must be >= 1")
    out: Path = ns.out or HERE / f"bert-{ns.variant}.json"

    t0 = time.perf_counter()
    doc = build(ns.variant, ns.seq_len, ns.batch, ns.dtype)
    write_atomic(out, dumps_graph(doc))
    t = doc["metadata"]["totals"]
    print(f"wrote {out}: {t['num_nodes']} nodes, {t['num_edges']} edges, "
          f"{t['flops'] / 1e9:.3f} GFLOP, {t['weight_bytes'] / 1e6:.1f} MB weights "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
