"""Import an ONNX model into a :class:`~mcm_gym.Graph` using ONNX shape inference.

Units: ``flops`` in FLOPs (a multiply-add counts 2, as in ``torch.utils.flop_counter``);
``weight_bytes``, ``out_bytes`` and edge ``bytes`` in bytes.

Rules:

* **nodes**: one per ONNX node (named by its ``name``, or ``<op_type>_<index>``; made unique), plus
  one ``"input"`` node per graph input that is not an initializer. ``Constant`` nodes are
  constants, not graph nodes (their bytes are reported as ``constant_bytes``).
* **weights**: an initializer read by one node adds its bytes to that node's ``weight_bytes``;
  one read by several nodes (tied weights) becomes an entry of the graph's ``shared`` list (held
  once on every chip that runs a reader), also listed in ``import_report["shared_initializers"]``;
  initializers nobody reads are in ``import_report["unused_initializers"]``.
* **edges**: producer -> consumer for every tensor one node makes and another reads (tensors read by
  a subgraph of ``If``/``Loop``/``Scan`` count as read by that node); ``bytes`` is the sum of the
  distinct tensors along the edge.
* **flops**: ``MatMul``, ``Gemm``, ``Conv``, ``ConvTranspose``, their integer/QLinear variants, and
  ``LSTM``/``GRU``/``RNN`` (gate matmuls). Every other op counts 0 and is listed in
  ``import_report["ops_without_flop_formula"]`` (data-movement ops apart, in
  ``zero_flop_data_ops``); a formula op whose shapes inference could not resolve is listed in
  ``flops_unknown_shape``.
* **bytes**: numel x element size from the inferred shapes (``dtype_bytes`` overrides the size of
  floating tensors, e.g. 1 for int8 storage); tensors of unknown shape count 0 and are listed in
  ``tensors_without_shape``.

``onnx`` is imported lazily; install it with ``pip install 'mcm-gym[onnx]'``.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from mcm_gym.core.graph import Edge, Graph, GraphError, Node, error_summary

__all__ = ["from_onnx"]

_ONNX_MISSING = ("mcm_gym.instances.importers.from_onnx needs the onnx package; install it with: "
                 "pip install 'mcm-gym[onnx]' (or pip install onnx)")

_DATA_OPS = frozenset({
    "Cast", "CastLike", "Concat", "ConstantOfShape", "DepthToSpace", "Expand", "Flatten", "Gather",
    "GatherElements", "GatherND", "Identity", "Pad", "Range", "Reshape", "Shape", "Size", "Slice",
    "SpaceToDepth", "Split", "Squeeze", "Tile", "Transpose", "Unsqueeze", "Dropout", "Where",
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Trilu",
    "ScatterND", "ScatterElements", "OneHot", "NonZero",
})


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(_ONNX_MISSING) from exc
    return onnx


def _float_types(onnx: Any) -> set[int]:
    tp = onnx.TensorProto
    names = ("FLOAT", "FLOAT16", "BFLOAT16", "DOUBLE", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ",
             "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT4E2M1")
    return {getattr(tp, n) for n in names if hasattr(tp, n)}


def _elem_size(onnx: Any, elem_type: int) -> float:
    """Bytes per element of an ONNX tensor type (4-bit types: 0.5); 0 when unknown."""
    tp = onnx.TensorProto
    half = {getattr(tp, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(tp, n)}
    if elem_type in half:
        return 0.5
    try:
        return float(onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize)
    except Exception:  # noqa: BLE001 - strings, undefined
        return 0.0


def _attr(node: Any, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            import onnx

            return onnx.helper.get_attribute_value(a)
    return default


def _prod(dims: list[int]) -> int:
    return math.prod(dims) if dims else 1


def from_onnx(path: str | os.PathLike[str], *, dtype_bytes: int | None = None,
              name: str | None = None, graph_id: str | None = None) -> Graph:
    """Import the ONNX model at ``path`` (see the module doc for the rules).

    Args:
        path: an ``.onnx`` file (external weight data need not be present: only shapes are read).
        dtype_bytes: storage bytes per element of floating tensors; None keeps the file's types.
        name: graph name; default: the ONNX graph's name, else the file's stem.
        graph_id: graph id, e.g. ``"zoo://my-model-v1"``; default None.

    Raises:
        ImportError: the ``onnx`` package is not installed.
        GraphError: the file is missing, not an ONNX model, fails the ONNX checker, or its graph
            is not a DAG; the message names the cause.
    """
    onnx = _import_onnx()
    path = Path(path)
    if dtype_bytes is not None and (isinstance(dtype_bytes, bool)
                                    or not isinstance(dtype_bytes, int) or dtype_bytes < 1):
        raise ValueError(f"dtype_bytes must be a positive integer or None, got {dtype_bytes!r}")
    if not path.is_file():
        raise GraphError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
        raise GraphError(f"{path}: not a valid ONNX model ({error_summary(exc)})") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise GraphError(f"{path}: not a valid ONNX model (no graph nodes)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - onnx.checker.ValidationError
        raise GraphError(f"{path}: ONNX checker rejected the model ({error_summary(exc)})") from None
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                  data_prop=True)
    except Exception as exc:  # noqa: BLE001
        raise GraphError(f"{path}: ONNX shape inference failed ({error_summary(exc)})") from None

    g = model.graph
    floats = _float_types(onnx)

    # tensor name -> (elem_type, dims or None when any dim is unknown)
    info: dict[str, tuple[int, list[int] | None]] = {}

    def note_value(vi: Any) -> None:
        t = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if t is None:
            return
        dims: list[int] | None = []
        if not t.HasField("shape"):
            dims = None
        else:
            for d in t.shape.dim:
                if d.HasField("dim_value") and d.dim_value >= 0:
                    dims.append(int(d.dim_value))  # type: ignore[union-attr]
                else:
                    dims = None
                    break
        info[vi.name] = (t.elem_type, dims)

    for vi in list(g.input) + list(g.output) + list(g.value_info):
        note_value(vi)
    inits = {t.name: t for t in g.initializer}
    for t in g.initializer:
        info[t.name] = (t.data_type, [int(d) for d in t.dims])

    unknown_shape: set[str] = set()

    def tensor_bytes(tname: str) -> int:
        if tname not in info or info[tname][1] is None:
            unknown_shape.add(tname)
            return 0
        et, dims = info[tname]
        size = dtype_bytes if (dtype_bytes is not None and et in floats) else _elem_size(onnx, et)
        return int(math.ceil(_prod(dims) * size))  # type: ignore[arg-type]

    def dims_of(tname: str) -> list[int] | None:
        return info[tname][1] if tname in info else None

    # Names.
    used: set[str] = set()

    def unique(base: str) -> str:
        nm, k = base, 1
        while nm in used:
            k += 1
            nm = f"{base}_{k}"
        used.add(nm)
        return nm

    nodes: list[Node] = []
    producer: dict[str, str] = {}  # tensor -> graph node name
    for vi in g.input:
        if vi.name in inits:
            continue
        nm = unique(vi.name or "input")
        producer[vi.name] = nm
        nodes.append(Node(nm, "input", 0.0, 0.0, float(tensor_bytes(vi.name))))

    constant_bytes = 0
    const_tensors: set[str] = set()
    readers: dict[str, list[str]] = {}  # initializer -> nodes that read it, in file order
    edge_tensors: dict[tuple[str, str], dict[str, int]] = {}
    no_formula: dict[str, list[int]] = {}
    data_ops: Counter[str] = Counter()
    unknown_flops: Counter[str] = Counter()
    op_counts: Counter[str] = Counter()

    for i, nd in enumerate(g.node):
        if nd.op_type == "Constant" and nd.domain in ("", "ai.onnx"):
            for out in nd.output:
                const_tensors.add(out)
                constant_bytes += tensor_bytes(out)
            continue
        nm = unique(nd.name or f"{nd.op_type}_{i}")
        op = nd.op_type if nd.domain in ("", "ai.onnx") else f"{nd.domain}.{nd.op_type}"
        op_counts[op] += 1
        reads = [t for t in nd.input if t] + sorted(_outer_refs(nd))
        for t in reads:
            if t in inits:
                users = readers.setdefault(t, [])
                if nm not in users:
                    users.append(nm)
            elif t in producer and producer[t] != nm:
                edge_tensors.setdefault((producer[t], nm), {})[t] = tensor_bytes(t)
        flops = _flops(nd, dims_of)
        out_elems = sum(_prod(d) for d in (dims_of(o) for o in nd.output if o) if d is not None)
        if flops is None:
            unknown_flops[op] += 1
            flops = 0
        elif flops == 0:
            if nd.op_type in _DATA_OPS:
                data_ops[op] += 1
            else:
                e = no_formula.setdefault(op, [0, 0])
                e[0] += 1
                e[1] += out_elems
        out_b = sum(tensor_bytes(o) for o in nd.output if o)
        nodes.append(Node(nm, op, float(flops), 0.0, float(out_b)))
        for o in nd.output:
            if o:
                producer[o] = nm

    edges = [Edge(s, d, float(sum(t.values()))) for (s, d), t in edge_tensors.items()]
    own: Counter[str] = Counter()
    shared_list: list[dict[str, Any]] = []
    for t, users in readers.items():
        if len(users) == 1:
            own[users[0]] += tensor_bytes(t)
        else:
            shared_list.append({"name": t, "bytes": tensor_bytes(t), "users": users})
    nodes = [Node(n.name, n.op, n.flops, float(own[n.name]), n.out_bytes) for n in nodes]
    shared = {t["name"]: t["users"] for t in shared_list}
    param_bytes = sum(tensor_bytes(t) for t in inits)
    unused = sorted(t for t in inits if t not in readers)
    label = name or g.name or path.stem
    meta: dict[str, Any] = {
        "source": str(path),
        "importer": "mcm_gym.instances.importers.onnx_import.from_onnx (onnx shape inference)",
        "onnx_version": onnx.__version__,
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "dtype_bytes": dtype_bytes,
        "totals": {
            "flops": int(sum(n.flops for n in nodes)),
            "weight_bytes": int(sum(n.weight_bytes for n in nodes) + sum(t["bytes"] for t in shared_list)),
            "param_bytes": int(param_bytes),
            "constant_bytes": int(constant_bytes),
            "num_nodes": len(nodes),
            "num_edges": len(edges),
        },
        "import_report": {
            "ops_without_flop_formula": {
                op: {"nodes": c, "output_elements": e}
                for op, (c, e) in sorted(no_formula.items())},
            "zero_flop_data_ops": dict(sorted(data_ops.items())),
            "flops_unknown_shape": dict(sorted(unknown_flops.items())),
            "tensors_without_shape": sorted(unknown_shape)[:50],
            "num_tensors_without_shape": len(unknown_shape),
            "op_counts": dict(sorted(op_counts.items())),
            "shared_initializers": shared,
            "unused_initializers": unused,
            "edge_bytes_rule": "sum of distinct tensors flowing src->dst",
        },
    }
    try:
        return Graph(nodes, edges, name=label, id=graph_id, metadata=meta, shared=shared_list)
    except GraphError as exc:
        raise GraphError(f"{path}: {exc}") from None


def _outer_refs(node: Any) -> set[str]:
    """Tensors a node's subgraphs (``If``/``Loop``/``Scan`` bodies) read from the outer scope."""
    out: set[str] = set()
    for a in node.attribute:
        subs = list(a.graphs) + ([a.g] if a.HasField("g") else [])
        for sg in subs:
            local = {t.name for t in sg.initializer} | {v.name for v in sg.input}
            for sn in sg.node:
                local.update(o for o in sn.output if o)
            for sn in sg.node:
                out.update(t for t in sn.input if t and t not in local)
                out.update(_outer_refs(sn) - local)
    return out


def _flops(nd: Any, dims_of: Any) -> int | None:
    """FLOPs of one ONNX node (2 per multiply-add); 0 without a formula; None when the formula's
    shapes are unknown."""
    op = nd.op_type if nd.domain in ("", "ai.onnx") else ""
    ins = list(nd.input)

    def d(i: int) -> list[int] | None:
        return dims_of(ins[i]) if i < len(ins) and ins[i] else None

    out = dims_of(nd.output[0]) if nd.output and nd.output[0] else None
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = d(0)
        if a is None or out is None or not a:
            return None
        return 2 * _prod(out) * a[-1]
    if op == "Gemm":
        a, b = d(0), d(1)
        if a is None or b is None or len(a) != 2 or len(b) != 2:
            return None
        m, k = (a[1], a[0]) if _attr(nd, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(nd, "transB", 0) else b[1]
        return 2 * m * n * k
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = d(3) if op == "QLinearConv" else d(1)
        if w is None or out is None or len(w) < 2:
            return None
        return 2 * _prod(out) * _prod(w[1:])  # out elements x (Cin/group x kernel)
    if op == "ConvTranspose":
        x, w = d(0), d(1)
        if x is None or w is None or len(w) < 2:
            return None
        return 2 * _prod(x) * _prod(w[1:])  # input elements x (Cout/group x kernel)
    if op in ("LSTM", "GRU", "RNN"):
        x, w, r = d(0), d(1), d(2)
        if x is None or w is None or r is None or len(x) != 3:
            return None
        seq, batch = (x[1], x[0]) if _attr(nd, "layout", 0) else (x[0], x[1])
        dirs, gh, inp = w
        hidden = r[2]
        return 2 * seq * batch * dirs * gh * (inp + hidden)
    return 0
