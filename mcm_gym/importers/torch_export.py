"""Import a PyTorch model into an ``mcm-graph/1`` document via :func:`torch.export.export`.

Units: ``flops`` in FLOPs as counted by :class:`torch.utils.flop_counter.FlopCounterMode`
(a multiply-add counts 2); ``weight_bytes``, ``out_bytes`` and edge ``bytes`` in bytes. All ints.

torch is imported lazily, inside :func:`from_torch`, so importing this module does not need it.
"""

from __future__ import annotations

import json
import math
import platform
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["FORMAT", "from_torch"]

FORMAT = "mcm-graph/1"

_TORCH_MISSING = (
    "mcm_gym.importers.from_torch needs PyTorch; install it with: pip install 'mcm-gym[torch]'"
)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(_TORCH_MISSING) from exc
    return torch


def _tensor_bytes(value: Any, torch: Any) -> int:
    """Bytes of a tensor, or of the tensors in a (nested) tuple/list; 0 for non-tensors."""
    if isinstance(value, torch.Tensor):
        return int(value.numel()) * int(value.element_size())
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v, torch) for v in value)
    return 0


def _jsonable(value: Any) -> Any:
    """JSON-serialisable copy of ``value``; unsupported leaves become None (dropped in dicts)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            jv = _jsonable(v)
            if jv is not None or v is None:
                out[str(k)] = jv
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        return str(value).removeprefix("torch.")
    return None


def _op_name(target: Any) -> str:
    """Short op type: ``aten.linear`` for ``torch.ops.aten.linear.default``; else a dotted name."""
    packet = getattr(target, "_overloadpacket", None)
    if packet is not None:
        ns = getattr(target, "namespace", None) or str(packet).split(".")[0]
        return f"{ns}.{packet.__name__}"
    name = getattr(target, "__name__", None) or str(target)
    module = getattr(target, "__module__", None)
    if module in (None, "builtins", "_operator", "operator"):
        return f"operator.{name}" if module in ("_operator", "operator") else name
    return f"{module}.{name}"


def _sdpa_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any,
                out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of fused attention: ``Q @ K^T`` plus ``P @ V`` (2 FLOPs per multiply-add).

    Masking/causality is ignored, as in torch's own formulas for the CUDA attention kernels.
    """
    b, h, s_q, d_qk = query_shape[-4:]
    s_k = key_shape[-2]
    d_v = value_shape[-1]
    return 2 * b * h * s_q * s_k * d_qk + 2 * b * h * s_q * s_k * d_v


def _extra_flop_formulas(torch: Any) -> dict[Any, Any]:
    """Formulas torch's counter lacks for kernels a model may dispatch to (op packet -> formula).

    On CPU, ``aten.scaled_dot_product_attention`` runs
    ``aten._scaled_dot_product_flash_attention_for_cpu``, which torch's ``flop_registry`` does not
    cover, so attention would count 0 FLOPs; we supply the standard two-matmul count.
    """
    from torch.utils.flop_counter import flop_registry

    extra: dict[Any, Any] = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu",):
        packet = getattr(torch.ops.aten, name, None)
        if packet is not None and packet not in flop_registry:
            extra[packet] = _sdpa_flops
    return extra


def from_torch(
    model: Any,
    example_inputs: tuple[Any, ...],
    *,
    dtype: str = "bfloat16",
    name: str,
    graph_id: str,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``model`` with :func:`torch.export.export` and return an ``mcm-graph/1`` document.

    The model is cast to ``dtype`` (floating parameters and buffers, e.g. ``"bfloat16"``) and put
    in eval mode *in place*; integer inputs (token ids) are passed as given.

    Graph construction (ATen level, as exported: no ``run_decompositions``, so composite ops such
    as ``aten.linear``, ``aten.layer_norm`` and ``aten.scaled_dot_product_attention`` stay single
    nodes, which is the granularity a partitioner wants; their FLOPs are still counted
    because the counter sees the kernels they dispatch to):

    * **nodes**: one per ``call_function`` node, named by its fx name, plus one ``"input"`` node
      (0 FLOPs, 0 weight bytes) per user-input placeholder. The ``output`` node is dropped.
    * **weights**: parameter placeholders are not nodes. A parameter's bytes become
      ``weight_bytes`` of the first node (in topological order) that consumes it; later
      consumers of the same parameter are listed in ``import_report["shared_parameters"]``.
      Buffers and lifted constants (e.g. BERT's ``position_ids``) are neither nodes nor weights;
      their total bytes go to ``metadata["buffer_bytes"]``.
    * **getitem**: ``operator.getitem`` nodes of multi-output ops are folded into their producer:
      consumers of an item get an edge from the producer carrying that item's bytes.
      The producer's ``out_bytes`` is the sum over all its tensor outputs.
    * **edges**: one per (producer, consumer) pair of kept nodes; ``bytes`` is the sum of the
      *distinct* tensors flowing along it (a tensor used twice by one consumer counts once).
      Edges from buffers/constants are dropped with them.
    * **flops**: the exported graph is executed node by node on real tensors under
      ``FlopCounterMode``; each node gets the counter's increase while it ran. Hence the sum of
      node FLOPs equals the counter's total for the graph, and ``totals.flop_counter_flops`` (a
      separate ``FlopCounterMode`` run of the eager ``model``) checks that against the model.
      The counter only has formulas for matmul/conv/attention-like kernels; nodes whose count is
      0 (elementwise ops, norms, views, ...) are tallied in
      ``import_report["ops_without_flop_formula"]`` (op -> node count). This is expected.
      torch has no formula for the CPU fused-attention kernel, so the importer adds the standard
      two-matmul one (both counters use it; see ``import_report["extra_flop_formulas"]``).
    * **out_bytes**: numel x element size of the output(s) in ``node.meta["val"]``; views
      (``view``, ``expand``, ``transpose``, ...) count their logical size. Non-tensors give 0.

    Args:
        model: a ``torch.nn.Module``.
        example_inputs: positional inputs of ``model`` (shapes are fixed in the graph).
        dtype: name of a torch floating dtype, e.g. ``"bfloat16"``, ``"float16"``, ``"float32"``.
        name: graph name (``"name"`` field).
        graph_id: graph id (``"id"`` field), e.g. ``"zoo://bert-base-v1"``.
        metadata: extra metadata merged over the generated metadata (e.g. ``source``).

    Returns:
        A JSON-serialisable dict with ``format``, ``id``, ``name``, ``metadata``, ``nodes`` (in a
        topological order) and ``edges``.

    Raises:
        ImportError: torch is not installed.
        ValueError: ``dtype`` is not a torch floating dtype, or inputs do not match the export.
    """
    torch = _import_torch()
    from torch.export.graph_signature import InputKind
    from torch.fx import Interpreter
    from torch.utils import _pytree as pytree
    from torch.utils.flop_counter import FlopCounterMode

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ValueError(f"dtype must name a torch floating dtype, got {dtype!r}")
    if not isinstance(example_inputs, tuple):
        raise ValueError("example_inputs must be a tuple of positional inputs")

    model = model.to(torch_dtype).eval()
    dtype_bytes = int(torch.empty((), dtype=torch_dtype).element_size())

    extra_formulas = _extra_flop_formulas(torch)

    # Reference count on the eager model, independent of the exported graph.
    ref_counter = FlopCounterMode(display=False, custom_mapping=extra_formulas)
    with torch.no_grad(), ref_counter:
        model(*example_inputs)
    flop_counter_flops = int(ref_counter.get_total_flops())

    exported = torch.export.export(model, example_inputs, strict=False)
    gm = exported.graph_module
    graph = gm.graph
    specs = exported.graph_signature.input_specs
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(specs):
        raise ValueError("exported graph placeholders do not match its signature")

    user_values = pytree.tree_leaves((example_inputs, {}))
    n_user = sum(1 for s in specs if s.kind == InputKind.USER_INPUT)
    if n_user != len(user_values):
        raise ValueError(
            f"export has {n_user} user inputs but example_inputs flatten to {len(user_values)}"
        )

    # Placeholder name -> role, and the runtime values to feed them.
    state = exported.state_dict
    consts = exported.constants
    user_iter = iter(user_values)
    flat_args: list[Any] = []
    param_of: dict[str, tuple[str, Any]] = {}  # placeholder -> (fqn, tensor)
    buffer_bytes_by_name: dict[str, int] = {}
    user_inputs: set[str] = set()
    for node, spec in zip(placeholders, specs, strict=True):
        kind, target = spec.kind, spec.target
        if kind == InputKind.USER_INPUT:
            value = next(user_iter)
            user_inputs.add(node.name)
        elif kind == InputKind.PARAMETER:
            value = state[target]
            param_of[node.name] = (target, value)
        elif kind in (InputKind.BUFFER, InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ):
            value = state[target] if target in state else consts[target]
            buffer_bytes_by_name[str(target)] = _tensor_bytes(value, torch)
        else:
            raise ValueError(f"unsupported exported input kind {kind} for {node.name!r}")
        flat_args.append(value)

    # Execute node by node under the flop counter.
    node_flops: dict[str, int] = {}

    class _CountingInterpreter(Interpreter):
        def run_node(self, n: Any) -> Any:
            before = counter.get_total_flops()
            result = super().run_node(n)
            node_flops[n.name] = int(counter.get_total_flops() - before)
            return result

    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=extra_formulas) as counter:
        _CountingInterpreter(gm).run(*flat_args)
    graph_flops = int(counter.get_total_flops())
    flops_by_kernel = {
        str(k): int(v) for k, v in sorted(counter.get_flop_counts().get("Global", {}).items(),
                                          key=lambda kv: str(kv[0]))
    }

    def out_bytes_of(n: Any) -> int:
        return _tensor_bytes(n.meta.get("val"), torch)

    def is_getitem(n: Any) -> bool:
        import operator

        return n.op == "call_function" and n.target is operator.getitem

    def producer(n: Any) -> Any:
        """Resolve (chains of) getitem nodes to the node that computes the tuple."""
        while is_getitem(n):
            n = n.args[0]
        return n

    nodes: list[dict[str, Any]] = []
    edge_tensors: dict[tuple[str, str], dict[str, int]] = {}
    charged: dict[int, str] = {}  # id(param tensor) -> node charged
    shared: dict[str, dict[str, Any]] = {}
    no_formula: Counter[str] = Counter()
    folded_getitems = 0
    kept: set[str] = set()

    for n in graph.nodes:
        if n.op == "placeholder":
            if n.name in user_inputs:
                nodes.append({"name": n.name, "op": "input", "flops": 0, "weight_bytes": 0,
                              "out_bytes": out_bytes_of(n)})
                kept.add(n.name)
            continue
        if n.op != "call_function":
            continue  # output, get_attr (submodules of higher-order ops)
        if is_getitem(n) and producer(n).name in kept:
            folded_getitems += 1
            continue
        weight = 0
        for inp in n.all_input_nodes:
            if inp.name in param_of:
                fqn, tensor = param_of[inp.name]
                key = id(tensor)
                if key not in charged:
                    charged[key] = n.name
                    weight += _tensor_bytes(tensor, torch)
                else:
                    entry = shared.setdefault(fqn, {"charged_to": charged[key], "also_used_by": []})
                    entry["also_used_by"].append(n.name)
                continue
            src = producer(inp)
            if src.name not in kept:
                continue  # buffers / constants / get_attr
            edge_tensors.setdefault((src.name, n.name), {})[inp.name] = out_bytes_of(inp)
        op = _op_name(n.target)
        flops = node_flops.get(n.name, 0)
        if flops == 0:
            no_formula[op] += 1
        nodes.append({"name": n.name, "op": op, "flops": flops, "weight_bytes": weight,
                      "out_bytes": out_bytes_of(n)})
        kept.add(n.name)

    edges = [{"src": s, "dst": d, "bytes": int(sum(t.values()))}
             for (s, d), t in edge_tensors.items()]

    # Parameter accounting (deduplicated, at the cast dtype).
    param_bytes = 0
    seen_params: set[int] = set()
    for p in model.parameters():
        if id(p) not in seen_params:
            seen_params.add(id(p))
            param_bytes += int(p.numel()) * int(p.element_size())
    unused = sorted({fqn for fqn, t in param_of.values() if id(t) not in charged})

    total_flops = sum(nd["flops"] for nd in nodes)
    total_weight = sum(nd["weight_bytes"] for nd in nodes)
    buffer_bytes = int(sum(buffer_bytes_by_name.values()))

    try:  # optional provenance
        import transformers

        transformers_version: str | None = transformers.__version__
    except ImportError:
        transformers_version = None
    config = getattr(model, "config", None)
    config_dict = config.to_dict() if hasattr(config, "to_dict") else None

    meta: dict[str, Any] = {
        "source": f"{type(model).__module__}.{type(model).__qualname__}",
        "importer": "mcm_gym.importers.torch_export.from_torch (torch.export, strict=False, "
                    "no decompositions)",
        "torch_version": torch.__version__,
        "transformers_version": transformers_version,
        "python_version": platform.python_version(),
        "config": _jsonable(config_dict) if config_dict is not None else None,
        "dtype": dtype,
        "dtype_bytes": dtype_bytes,
        "example_inputs": [
            {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            if isinstance(v, torch.Tensor) else {"value": _jsonable(v)}
            for v in user_values
        ],
        "buffer_bytes": buffer_bytes,
        "totals": {
            "flops": int(total_flops),
            "flop_counter_flops": flop_counter_flops,
            "weight_bytes": int(total_weight),
            "param_bytes": int(param_bytes),
            "buffer_bytes": buffer_bytes,
            "num_nodes": len(nodes),
            "num_edges": len(edges),
        },
        "import_report": {
            "graph_flop_counter_flops": graph_flops,
            "flops_by_kernel": flops_by_kernel,
            "extra_flop_formulas": sorted(f"aten.{p.__name__}" for p in extra_formulas),
            "ops_without_flop_formula": dict(sorted(no_formula.items())),
            "op_counts": dict(sorted(Counter(nd["op"] for nd in nodes).items())),
            "shared_parameters": shared,
            "unused_parameters": unused,
            "buffers": dict(sorted(buffer_bytes_by_name.items())),
            "folded_getitems": folded_getitems,
            "edge_bytes_rule": "sum of distinct tensors flowing src->dst",
        },
    }
    if metadata:
        meta.update(_jsonable(dict(metadata)))

    doc = {"format": FORMAT, "id": graph_id, "name": name, "metadata": meta,
           "nodes": nodes, "edges": edges}
    json.dumps(doc)  # fail here, not at write time, if something is not serialisable
    return doc
