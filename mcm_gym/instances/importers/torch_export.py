"""Import a PyTorch model into an ``mcm-graph/1`` document via :func:`torch.export.export`.

Units: ``flops`` in FLOPs as counted by :class:`torch.utils.flop_counter.FlopCounterMode`
(a multiply-add counts 2); ``weight_bytes``, ``out_bytes`` and edge ``bytes`` in bytes. All ints.

Works for any model ``torch.export`` can trace: transformers (encoders, decoders), CNNs, RNNs,
MLPs. torch is imported lazily, inside :func:`from_torch`, so importing this module does not
need it.
"""

from __future__ import annotations

import json
import math
import operator
import platform
import warnings
from collections import Counter
from collections.abc import Mapping
from typing import Any

from mcm_gym.core.graph import GraphError, error_summary

__all__ = ["FORMAT", "TraceError", "from_torch", "DATA_MOVEMENT_OPS"]

FORMAT = "mcm-graph/1"

_TORCH_MISSING = (
    "mcm_gym.instances.importers.from_torch needs PyTorch; install it with: pip install 'mcm-gym[torch]'"
)

#: Ops that move, reshape or create data without arithmetic: 0 FLOPs is their true count, so they
#: are reported apart from the compute ops the flop counter has no formula for.
DATA_MOVEMENT_OPS = frozenset({
    "_assert_tensor_metadata", "_to_copy", "_unsafe_view", "adaptive_avg_pool1d", "alias",
    "arange", "as_strided", "cat", "chunk", "clone", "constant_pad_nd", "contiguous", "copy",
    "detach", "dropout", "empty", "expand", "expand_as", "flatten", "full", "full_like", "gather",
    "index", "index_select", "lift_fresh_copy", "masked_fill", "narrow", "new_ones", "new_zeros",
    "ones", "ones_like", "pad", "permute", "repeat", "reshape", "roll", "select", "slice",
    "split", "split_with_sizes", "squeeze", "stack", "t", "to", "transpose", "type_as",
    "unbind", "unflatten", "unsqueeze", "view", "zeros", "zeros_like", "embedding", "getitem",
    "sym_size", "scalar_tensor", "where", "tril", "triu", "eq", "ne", "ge", "gt", "le", "lt",
})


class TraceError(GraphError):
    """``torch.export`` could not trace a model (data-dependent control flow, unsupported op)."""


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(_TORCH_MISSING) from exc
    return torch


def _tensor_bytes(value: Any, torch: Any, float_bytes: int | None = None) -> int:
    """Bytes of a tensor, or of the tensors in a (nested) tuple/list; 0 for non-tensors.

    ``float_bytes``: bytes per element of floating tensors (storage dtype), None for their own size.
    """
    if isinstance(value, torch.Tensor):
        size = (float_bytes if float_bytes is not None and value.is_floating_point()
                else int(value.element_size()))
        return int(value.numel()) * int(size)
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v, torch, float_bytes) for v in value)
    return 0


def _numel(value: Any, torch: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.numel())
    if isinstance(value, (tuple, list)):
        return sum(_numel(v, torch) for v in value)
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


def _mv_flops(a_shape: Any, b_shape: Any, *args: Any, **kwargs: Any) -> int:
    """Matrix-vector product ``(M, N) @ (N,)``: ``2 M N``."""
    return 2 * int(a_shape[0]) * int(a_shape[1])


def _addmv_flops(bias_shape: Any, a_shape: Any, b_shape: Any, *args: Any, **kwargs: Any) -> int:
    return _mv_flops(a_shape, b_shape)


def _dot_flops(a_shape: Any, b_shape: Any, *args: Any, **kwargs: Any) -> int:
    """Dot product of two ``(N,)`` vectors: ``2 N``."""
    return 2 * int(a_shape[0])


def _rnn_layer_flops(input_shape: Any, w_ih_shape: Any, w_hh_shape: Any, *args: Any,
                     **kwargs: Any) -> int:
    """One RNN/LSTM/GRU layer and direction (``aten.mkldnn_rnn_layer``): the gate matmuls
    ``x W_ih^T`` and ``h W_hh^T`` at every step, ``2 * steps * batch * (G*H) * (I + H)``, as the
    counter counts them when the layer runs as ``addmm`` calls (elementwise gate math excluded)."""
    tokens = math.prod(int(d) for d in input_shape[:-1])
    return 2 * tokens * (int(w_ih_shape[0]) * int(w_ih_shape[1])
                         + int(w_hh_shape[0]) * int(w_hh_shape[1]))


def _extra_flop_formulas(torch: Any) -> dict[Any, Any]:
    """Formulas torch's counter lacks for kernels a model may dispatch to (op packet -> formula).

    * ``aten._scaled_dot_product_flash_attention_for_cpu`` (what ``scaled_dot_product_attention``
      runs on CPU): the standard two-matmul count;
    * ``aten.mkldnn_rnn_layer`` (what ``aten.lstm``/``aten.gru`` run on CPU with oneDNN): the gate
      matmuls, so RNN FLOPs do not depend on which kernel the CPU picks;
    * ``aten.mv``, ``aten.addmv``, ``aten.dot``, ``aten.vdot`` (matrix-vector products).

    Both the reference count and the per-node count use them; they are listed in the report.
    """
    from torch.utils.flop_counter import flop_registry

    wanted = {
        "_scaled_dot_product_flash_attention_for_cpu": _sdpa_flops,
        "mkldnn_rnn_layer": _rnn_layer_flops,
        "mv": _mv_flops,
        "addmv": _addmv_flops,
        "dot": _dot_flops,
        "vdot": _dot_flops,
    }
    extra: dict[Any, Any] = {}
    for name, formula in wanted.items():
        packet = getattr(torch.ops.aten, name, None)
        if packet is not None and packet not in flop_registry:
            extra[packet] = formula
    return extra


def _model_label(model: Any) -> str:
    return type(model).__name__


def _fake_mode(torch: Any) -> Any:
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)


def _reference_flops(torch: Any, model: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     extra: dict[Any, Any], fake: bool) -> tuple[int, str]:
    """FLOPs of one eager forward pass under ``FlopCounterMode``; returns (FLOPs, "fake"|"real").

    Tries fake tensors first when ``fake``; a model that cannot run on them (e.g. it reads tensor
    values in Python) is run on real tensors. A model that fails on real tensors is a ValueError.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if fake:
        counter = FlopCounterMode(display=False, custom_mapping=extra)
        try:
            mode = _fake_mode(torch)
            f_args = tuple(mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args)
            f_kwargs = {k: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v
                        for k, v in kwargs.items()}
            with torch.no_grad(), mode, counter:
                model(*f_args, **f_kwargs)
            return int(counter.get_total_flops()), "fake"
        except Exception:  # noqa: BLE001 - any failure: count on real tensors instead
            pass
    counter = FlopCounterMode(display=False, custom_mapping=extra)
    try:
        with torch.no_grad(), counter:
            model(*args, **kwargs)
    except Exception as exc:
        raise ValueError(f"{_model_label(model)} failed to run on the example inputs: "
                         f"{error_summary(exc)}") from exc
    return int(counter.get_total_flops()), "real"


def _export(torch: Any, model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``torch.export.export`` (non-strict), turning any failure into a :class:`TraceError`."""
    try:
        with warnings.catch_warnings():
            # nn.LSTM/GRU re-assign their flat weight list in forward; harmless for the graph
            warnings.filterwarnings("ignore", message=".*were assigned during export.*")
            return torch.export.export(model, args, kwargs or None, strict=False)
    except Exception as exc:
        raise TraceError(
            f"torch.export could not trace {_model_label(model)}: {error_summary(exc)}") from exc


#: Prefix of the parameter names inside :func:`_tensor_outputs`' wrapper; stripped again.
_WRAPPED = "wrapped_model"


def _keep_tensors(value: Any, torch: Any, dropped: list[str], where: str) -> Any:
    """The tensors of a (nested) model output: tuples, lists and dicts (``ModelOutput`` included)
    are kept as tuples of their tensor parts; anything else (e.g. a KV cache object) is left out
    and its path and type appended to ``dropped``."""
    if isinstance(value, torch.Tensor):
        return value
    if value is None:
        return None
    if isinstance(value, dict):  # transformers' ModelOutput is an OrderedDict
        items = [(f"{where}.{k}", v) for k, v in value.items()]
    elif isinstance(value, (tuple, list)):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    else:
        dropped.append(f"{where}: {type(value).__name__}")
        return None
    kept = tuple(_keep_tensors(v, torch, dropped, w) for w, v in items)
    return tuple(v for v in kept if v is not None)


def _count_tensors(value: Any, torch: Any) -> int:
    """How many tensors a nested tuple (as :func:`_keep_tensors` returns) holds."""
    if isinstance(value, torch.Tensor):
        return 1
    return sum(_count_tensors(v, torch) for v in value) if isinstance(value, tuple) else 0


def _tensor_outputs(torch: Any, model: Any) -> Any:
    """``model`` behind a module whose forward returns only the tensors of its outputs
    (:func:`_keep_tensors`); ``.dropped`` lists what the last call left out, ``.kept`` counts the
    tensors it returned."""

    dropped: list[str] = []  # a closure, not a module attribute: export may undo attribute writes
    kept: list[int] = [0]  # how many tensors the last call returned

    class TensorOutputs(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            setattr(self, _WRAPPED, model)

        @property
        def dropped(self) -> list[str]:
            return dropped

        @property
        def kept(self) -> int:
            return kept[0]

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            dropped.clear()
            out = _keep_tensors(getattr(self, _WRAPPED)(*args, **kwargs), torch, dropped, "output")
            kept[0] = _count_tensors(out, torch)
            return out

    return TensorOutputs()


def _cast_inputs(value: Any, torch: Any, torch_dtype: Any) -> Any:
    """Floating tensors in a (nested) input structure cast to ``torch_dtype``; others unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(torch_dtype) if value.is_floating_point() else value
    if isinstance(value, tuple):
        return tuple(_cast_inputs(v, torch, torch_dtype) for v in value)
    if isinstance(value, list):
        return [_cast_inputs(v, torch, torch_dtype) for v in value]
    if isinstance(value, dict):
        return {k: _cast_inputs(v, torch, torch_dtype) for k, v in value.items()}
    return value


def from_torch(
    model: Any,
    example_inputs: tuple[Any, ...],
    *,
    dtype: str = "bfloat16",
    dtype_bytes: int | None = None,
    name: str | None = None,
    graph_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    example_kwargs: dict[str, Any] | None = None,
    fake: bool = True,
) -> dict[str, Any]:
    """Export ``model`` with :func:`torch.export.export` and return an ``mcm-graph/1`` document.

    (:func:`mcm_gym.instances.importers.from_torch` wraps this and returns a validated :class:`~mcm_gym.Graph`.)

    The model is cast to ``dtype`` (floating parameters and buffers, e.g. ``"bfloat16"``) and put
    in eval mode *in place*; floating example inputs are cast to ``dtype`` too, integer inputs
    (token ids) are passed as given.

    Graph construction (ATen level, as exported: no ``run_decompositions``, so composite ops such
    as ``aten.linear``, ``aten.conv2d``, ``aten.layer_norm``, ``aten.lstm`` and
    ``aten.scaled_dot_product_attention`` stay single nodes, which is the granularity a partitioner
    wants; their FLOPs are still counted because the counter sees the kernels they dispatch to):

    * **nodes**: one per ``call_function`` node, named by its fx name, plus one ``"input"`` node
      (0 FLOPs, 0 weight bytes) per user-input placeholder. The ``output`` node is dropped.
    * **weights**: parameter placeholders are not nodes. A parameter read by one node adds its
      bytes to that node's ``weight_bytes``; one read by several nodes (tied embeddings, a layer
      reused across depth) becomes an entry of the graph's ``shared`` list (name, bytes, users),
      held once on every chip that runs a user. ``import_report["shared_parameters"]`` lists them.
      Buffers and lifted constants (e.g. BERT's ``position_ids``, batch-norm running statistics)
      are neither nodes nor weights; their total bytes go to ``metadata["buffer_bytes"]``.
    * **getitem**: ``operator.getitem`` nodes of multi-output ops are folded into their producer:
      consumers of an item get an edge from the producer carrying that item's bytes.
      The producer's ``out_bytes`` is the sum over all its tensor outputs.
    * **edges**: one per (producer, consumer) pair of kept nodes; ``bytes`` is the sum of the
      *distinct* tensors flowing along it (a tensor used twice by one consumer counts once).
      Edges from buffers/constants are dropped with them.
    * **flops**: the exported graph is executed node by node (on fake tensors, see ``fake``) under
      ``FlopCounterMode``; each node gets the counter's increase while it ran. Hence the sum of
      node FLOPs equals the counter's total for the graph, and ``totals.flop_counter_flops`` (a
      separate ``FlopCounterMode`` run of the eager ``model``) checks that against the model.
      The counter has formulas for matmul/conv/attention-like kernels only. Nodes that count 0 are
      never silently zero: compute ops without a formula (elementwise, norms, softmax, pooling,
      ...) are listed in ``import_report["ops_without_flop_formula"]`` (op -> node count and
      output elements, a rough size of the work left out), and pure data-movement ops (views,
      copies, gathers; :data:`DATA_MOVEMENT_OPS`) in ``import_report["zero_flop_data_ops"]``.
      torch has no formula for some CPU kernels (fused attention, oneDNN RNN layers,
      matrix-vector products), so the importer adds them (both counters use them; see
      ``import_report["extra_flop_formulas"]`` and :func:`_extra_flop_formulas`).
    * **out_bytes**: numel x element size of the output(s) in ``node.meta["val"]``; views
      (``view``, ``expand``, ``transpose``, ...) count their logical size. Non-tensors give 0.

    Args:
        model: a ``torch.nn.Module``.
        example_inputs: positional inputs of ``model`` (shapes are fixed in the graph).
        dtype: name of a torch floating dtype the model runs in, e.g. ``"bfloat16"``,
            ``"float16"``, ``"float32"``.
        dtype_bytes: storage bytes per element of floating tensors (weights and activations), if
            different from ``dtype``'s: e.g. ``1`` for an int8-quantised deployment
            (weights and activations stored in 8 bits; FLOPs do not depend on it).
            Integer tensors (token ids) keep their own size.
        name: graph name (``"name"`` field); default: the model's class name.
        graph_id: graph id (``"id"`` field), e.g. ``"zoo://bert-base-v1"``; default None.
        metadata: extra metadata merged over the generated metadata (e.g. ``source``).
        example_kwargs: keyword inputs of ``model``, if any.
        fake: count FLOPs on fake tensors (shapes only, no arithmetic: fast even where a dtype
            such as bf16 is slow on the CPU); falls back to real tensors when the eager model
            cannot run on fake ones. FLOP counts depend on shapes only, so both agree.

    Returns:
        A JSON-serialisable dict with ``format``, ``id``, ``name``, ``metadata``, ``nodes`` (in a
        topological order) and ``edges``.

    Raises:
        ImportError: torch is not installed.
        ValueError: ``dtype`` is not a torch floating dtype, ``dtype_bytes`` is not a positive
            integer, or the model cannot run on the inputs.
        TraceError: ``torch.export`` could not trace the model (a :class:`GraphError`), with
            the cause's first line; the original exception is chained.
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
    if dtype_bytes is not None and (isinstance(dtype_bytes, bool)
                                    or not isinstance(dtype_bytes, int) or dtype_bytes < 1):
        raise ValueError(f"dtype_bytes must be a positive integer or None, got {dtype_bytes!r}")
    kwargs = dict(example_kwargs or {})

    model = model.to(torch_dtype).eval()
    example_inputs = _cast_inputs(example_inputs, torch, torch_dtype)
    kwargs = _cast_inputs(kwargs, torch, torch_dtype)
    compute_bytes = int(torch.empty((), dtype=torch_dtype).element_size())
    fbytes = dtype_bytes  # None: tensors' own element size

    def nbytes(value: Any) -> int:
        return _tensor_bytes(value, torch, fbytes)

    extra_formulas = _extra_flop_formulas(torch)

    # Reference count on the eager model, independent of the exported graph.
    flop_counter_flops, count_mode = _reference_flops(torch, model, example_inputs, kwargs,
                                                      extra_formulas, fake)

    dropped_outputs: list[str] = []
    dropped_reason = ""
    try:
        exported = _export(torch, model, example_inputs, kwargs)
    except TraceError as first:
        # e.g. a transformers decoder that returns a KV cache torch.export has no pytree for: trace
        # the tensors of its outputs instead, and report what was left out
        wrapper = _tensor_outputs(torch, model)
        try:
            exported = _export(torch, wrapper, example_inputs, kwargs)
        except TraceError:
            raise first from first.__cause__
        dropped_outputs = list(wrapper.dropped)
        # not an output problem (the wrapper changed nothing), or nothing of the output is left
        if not dropped_outputs or wrapper.kept == 0:
            raise first from first.__cause__
        dropped_reason = str(first.args[0])
        warnings.warn(f"{_model_label(model)}: traced without these outputs, which torch.export cannot "
                      f"return: {', '.join(wrapper.dropped)}", stacklevel=2)

    def unwrap(target: Any) -> str:  # a name as in the user's model, not the wrapper's
        return str(target).removeprefix(_WRAPPED + ".") if dropped_outputs else str(target)

    gm = exported.graph_module
    graph = gm.graph
    specs = exported.graph_signature.input_specs
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(specs):
        raise ValueError("exported graph placeholders do not match its signature")

    user_values = pytree.tree_leaves((example_inputs, kwargs))
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
            param_of[node.name] = (unwrap(target), value)
        elif kind in (InputKind.BUFFER, InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ):
            value = state[target] if target in state else consts[target]
            buffer_bytes_by_name[unwrap(target)] = nbytes(value)
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

    counter = FlopCounterMode(display=False, custom_mapping=extra_formulas)
    if count_mode == "fake":
        fake_mode = _fake_mode(torch)
        fake_args = [fake_mode.from_tensor(a) if isinstance(a, torch.Tensor) else a
                     for a in flat_args]
        with torch.no_grad(), fake_mode, counter:
            _CountingInterpreter(gm).run(*fake_args)
    else:
        with torch.no_grad(), counter:
            _CountingInterpreter(gm).run(*flat_args)
    graph_flops = int(counter.get_total_flops())
    flops_by_kernel = {
        str(k): int(v) for k, v in sorted(counter.get_flop_counts().get("Global", {}).items(),
                                          key=lambda kv: str(kv[0]))
    }

    def out_bytes_of(n: Any) -> int:
        return nbytes(n.meta.get("val"))

    def is_getitem(n: Any) -> bool:
        return n.op == "call_function" and n.target is operator.getitem

    def producer(n: Any) -> Any:
        """Resolve (chains of) getitem nodes to the node that computes the tuple."""
        while is_getitem(n):
            n = n.args[0]
        return n

    nodes: list[dict[str, Any]] = []
    edge_tensors: dict[tuple[str, str], dict[str, int]] = {}
    readers: dict[int, tuple[str, int, list[str]]] = {}  # id(param) -> (fqn, bytes, reading nodes)
    no_formula: dict[str, list[int]] = {}  # op -> [nodes, output elements]
    data_ops: Counter[str] = Counter()
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
        for inp in n.all_input_nodes:
            if inp.name in param_of:
                fqn, tensor = param_of[inp.name]
                users = readers.setdefault(id(tensor), (fqn, nbytes(tensor), []))[2]
                if not users or users[-1] != n.name:
                    users.append(n.name)
                continue
            src = producer(inp)
            if src.name not in kept:
                continue  # buffers / constants / get_attr
            edge_tensors.setdefault((src.name, n.name), {})[inp.name] = out_bytes_of(inp)
        op = _op_name(n.target)
        flops = node_flops.get(n.name, 0)
        if flops == 0:
            if op.rsplit(".", 1)[-1] in DATA_MOVEMENT_OPS:
                data_ops[op] += 1
            else:
                entry_nf = no_formula.setdefault(op, [0, 0])
                entry_nf[0] += 1
                entry_nf[1] += _numel(n.meta.get("val"), torch)
        nodes.append({"name": n.name, "op": op, "flops": flops, "weight_bytes": 0,
                      "out_bytes": out_bytes_of(n)})
        kept.add(n.name)

    by_name = {nd["name"]: nd for nd in nodes}
    shared_list: list[dict[str, Any]] = []
    for fqn, size, users in readers.values():
        if len(users) == 1:
            by_name[users[0]]["weight_bytes"] += size
        else:
            shared_list.append({"name": fqn, "bytes": size, "users": users})
    shared = {t["name"]: t["users"] for t in shared_list}

    edges = [{"src": s, "dst": d, "bytes": int(sum(t.values()))}
             for (s, d), t in edge_tensors.items()]

    # Parameter accounting (deduplicated, at the storage dtype).
    param_bytes = 0
    seen_params: set[int] = set()
    for p in model.parameters():
        if id(p) not in seen_params:
            seen_params.add(id(p))
            param_bytes += nbytes(p)
    unused = sorted({fqn for fqn, t in param_of.values() if id(t) not in readers})

    total_flops = sum(nd["flops"] for nd in nodes)
    total_weight = sum(nd["weight_bytes"] for nd in nodes) + sum(t["bytes"] for t in shared_list)
    buffer_bytes = int(sum(buffer_bytes_by_name.values()))

    try:  # optional provenance
        import transformers

        transformers_version: str | None = transformers.__version__
    except ImportError:
        transformers_version = None
    config: Any = getattr(model, "config", None)
    config_dict = config.to_dict() if hasattr(config, "to_dict") else None
    if isinstance(config_dict, dict):  # class-label tables are bulky and say nothing about shapes
        for label_key in ("id2label", "label2id"):
            config_dict.pop(label_key, None)

    meta: dict[str, Any] = {
        "source": f"{type(model).__module__}.{type(model).__qualname__}",
        "importer": "mcm_gym.instances.importers.torch_export.from_torch (torch.export, strict=False, "
                    "no decompositions)",
        "torch_version": torch.__version__,
        "transformers_version": transformers_version,
        "python_version": platform.python_version(),
        "config": _jsonable(config_dict) if config_dict is not None else None,
        "dtype": dtype,
        "dtype_bytes": fbytes if fbytes is not None else compute_bytes,
        **({"compute_dtype": dtype, "storage_bytes_per_float": fbytes}
           if fbytes is not None and fbytes != compute_bytes else {}),
        "flop_count_tensors": count_mode,
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
            "ops_without_flop_formula": {
                op: {"nodes": c, "output_elements": e}
                for op, (c, e) in sorted(no_formula.items())},
            "zero_flop_data_ops": dict(sorted(data_ops.items())),
            "op_counts": dict(sorted(Counter(nd["op"] for nd in nodes).items())),
            "shared_parameters": shared,
            "unused_parameters": unused,
            "buffers": dict(sorted(buffer_bytes_by_name.items())),
            "folded_getitems": folded_getitems,
            "edge_bytes_rule": "sum of distinct tensors flowing src->dst",
            **({"dropped_outputs": dropped_outputs, "dropped_outputs_reason": dropped_reason}
               if dropped_outputs else {}),
        },
    }
    if metadata:
        meta.update(_jsonable(dict(metadata)))

    doc = {"format": FORMAT, "id": graph_id, "name": name or _model_label(model), "metadata": meta,
           "nodes": nodes, "edges": edges, **({"shared": shared_list} if shared_list else {})}
    json.dumps(doc)  # fail here, not at write time, if something is not serialisable
    return doc
