"""Write the small hand-made graphs (``tiny://...``) used by tests, notebooks and teaching.

Run: ``python graphs/make_tiny.py`` (rewrites ``graphs/tiny-*.json``). Sizes are made up but
plausible (bf16): FLOPs in FLOPs, sizes in bytes. Each fits its default preset (``ring-4``) with
memory binding for ``tiny-attention``.
"""

from __future__ import annotations

from pathlib import Path

from mcm_gym.core.graph import Edge, Graph, Node

MiB = 1 << 20
HERE = Path(__file__).resolve().parent


def chain() -> Graph:
    """Six layers in a row: the simplest pipeline."""
    nodes = [Node("input", "input", 0, 0, 256 * 1024)]
    for i in range(1, 6):
        nodes.append(Node(f"layer{i}", "matmul", (i + 1) * 2e9, (8 + 4 * i) * MiB, 256 * 1024))
    edges = [Edge(nodes[i].name, nodes[i + 1].name) for i in range(5)]
    return Graph(nodes, edges, name="chain", id="tiny://chain-v1",
                 metadata={"source": "hand-made", "default_hardware": "ring-4", "dtype": "bfloat16"})


def diamond() -> Graph:
    """A residual block: two branches that rejoin, with triangles (input -> a -> add, input -> add)."""
    nodes = [
        Node("input", "input", 0, 0, 512 * 1024),
        Node("norm", "layer_norm", 5e6, 3 * 1024, 512 * 1024),
        Node("fc1", "matmul", 8e9, 24 * MiB, 2 * MiB),
        Node("act", "gelu", 2e7, 0, 2 * MiB),
        Node("fc2", "matmul", 8e9, 24 * MiB, 512 * 1024),
        Node("add", "add", 1e6, 0, 512 * 1024),
        Node("out", "layer_norm", 5e6, 3 * 1024, 512 * 1024),
    ]
    e = [("input", "norm"), ("norm", "fc1"), ("fc1", "act"), ("act", "fc2"), ("fc2", "add"),
         ("input", "add"), ("norm", "add"), ("add", "out")]
    return Graph(nodes, [Edge(a, b) for a, b in e], name="diamond", id="tiny://diamond-v1",
                 metadata={"source": "hand-made", "default_hardware": "ring-4", "dtype": "bfloat16"})


def attention() -> Graph:
    """One transformer encoder layer (hidden 2048, seq 128): attention and MLP with residuals."""
    h, s = 2048, 128
    act = s * h * 2  # bytes
    w = h * h * 2  # bytes of one h x h projection
    mm = 2 * s * h * h  # FLOPs of one projection
    nodes = [
        Node("x", "input", 0, 0, act),
        Node("q", "linear", mm, w, act),
        Node("k", "linear", mm, w, act),
        Node("v", "linear", mm, w, act),
        Node("scores", "matmul", 2 * s * s * h, 0, 16 * s * s * 2),
        Node("softmax", "softmax", 5 * 16 * s * s, 0, 16 * s * s * 2),
        Node("context", "matmul", 2 * s * s * h, 0, act),
        Node("proj", "linear", mm, w, act),
        Node("add1", "add", s * h, 0, act),
        Node("norm1", "layer_norm", 5 * s * h, 4 * h, act),
        Node("fc1", "linear", 4 * mm, 4 * w, 4 * act),
        Node("gelu", "gelu", 8 * 4 * s * h, 0, 4 * act),
        Node("fc2", "linear", 4 * mm, 4 * w, act),
        Node("add2", "add", s * h, 0, act),
        Node("norm2", "layer_norm", 5 * s * h, 4 * h, act),
    ]
    e = [("x", "q"), ("x", "k"), ("x", "v"), ("q", "scores"), ("k", "scores"), ("scores", "softmax"),
         ("softmax", "context"), ("v", "context"), ("context", "proj"), ("proj", "add1"), ("x", "add1"),
         ("add1", "norm1"), ("norm1", "fc1"), ("fc1", "gelu"), ("gelu", "fc2"), ("fc2", "add2"),
         ("norm1", "add2"), ("add2", "norm2")]
    return Graph(nodes, [Edge(a, b) for a, b in e], name="attention", id="tiny://attention-v1",
                 metadata={"source": "hand-made: one encoder layer, hidden 2048, seq 128, bf16",
                           "default_hardware": "ring-4", "dtype": "bfloat16"})


def main() -> None:
    for make in (chain, diamond, attention):
        g = make()
        g.save(HERE / f"tiny-{g.name}.json")
        print(f"wrote tiny-{g.name}.json: {g}")


if __name__ == "__main__":
    main()
