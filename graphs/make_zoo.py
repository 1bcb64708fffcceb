#!/usr/bin/env python
"""Build the graph zoo (``graphs/<name>.json``, ids ``zoo://<name>-v1``) from real models.

Every model is built from its configuration only (random init, seed 0; no weights are downloaded):
``transformers`` classes where the library has the model, ``torch.nn`` definitions in this file
otherwise (MLP-Mixer, GNMT). Each is exported with :func:`mcm_gym.instances.importers.from_torch`
(``torch.export``, FLOPs from ``torch.utils.flop_counter``), coarsened with
:func:`mcm_gym.instances.importers.coarsen` when it has more than ``MAX_NODES`` nodes (recorded in
``metadata["coarsening"]``), checked and written atomically.

Checks before writing (the script stops on a failure):

* FLOPs: the sum of node FLOPs is within 0.1% of ``FlopCounterMode`` on the eager model;
* weights: the sum of ``weight_bytes`` equals the parameter bytes at the graph's dtype;
* feasibility: on ``default_hardware`` (the first of the model's preferred presets that works),
  the repair of :func:`mcm_gym.search.split_by_work` gives a valid partition.

Dtypes. Most graphs are bf16 (2 bytes per element). Presets have 45 MiB (``ring-N``) or 48 MiB
(``mesh-RxC``) of SRAM per chip and a node's weights cannot be split, so a model whose largest
table exceeds that at bf16 (BERT-large's word embedding: 62.5 MB; GPT-2's: 77.2 MB; SmolLM's:
56.6 MB; GNMT's embeddings and classifier: 66.2 MB each) is stored as **int8** (1 byte per
weight and per activation element, the usual W8A8 inference deployment); FLOPs are the float
model's. Default presets: transformers and GNMT on paper-like rings, CNNs and MLP-Mixer on
Simba-like meshes; the first of each model's preferred presets where it is feasible.

Split: see :mod:`mcm_gym.instances.zoo` (one held-out model per family whose relatives are in ``train``).

``graphs/bert-base.json`` is made by ``graphs/make_bert.py`` and is not rebuilt here.

Usage::

    python graphs/make_zoo.py                 # all models
    python graphs/make_zoo.py --only gpt2 resnet-50
    python graphs/make_zoo.py --list
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent))

MAX_NODES = 600  # graphs with more nodes are coarsened to this many
SEQ_LEN = 128  # tokens per sequence for the language models
IMAGE = 224  # image side for the vision models


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry: ``build() -> (model, example_inputs, source, config_or_None)``."""

    name: str
    build: Callable[[], tuple[Any, tuple[Any, ...], str, dict[str, Any] | None]]
    family: str
    split: str  # "train" or "heldout"
    presets: tuple[str, ...]  # preferred default hardware, first feasible wins
    dtype: str = "bfloat16"  # "bfloat16" or "int8" (storage; see the module doc)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: Content version of the id (``zoo://<name>-v<version>``): bumped when the file's content changes.
    version: int = 1
    #: Coarsen above this many nodes; None: never (graphs kept at thousands of nodes on purpose).
    max_nodes: int | None = MAX_NODES


# ----------------------------------------------------------------------------- torch.nn models
def _mixer_classes() -> Any:
    import torch
    from torch import nn

    class MlpBlock(nn.Module):
        def __init__(self, dim: int, hidden: int) -> None:
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.act(self.fc1(x)))

    class MixerBlock(nn.Module):
        def __init__(self, tokens: int, dim: int, tokens_mlp: int, channels_mlp: int) -> None:
            super().__init__()
            self.norm1, self.token_mlp = nn.LayerNorm(dim, eps=1e-6), MlpBlock(tokens, tokens_mlp)
            self.norm2, self.channel_mlp = nn.LayerNorm(dim, eps=1e-6), MlpBlock(dim, channels_mlp)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
            return x + self.channel_mlp(self.norm2(x))

    class MlpMixer(nn.Module):
        """MLP-Mixer (Tolstikhin et al., 2021), as in the paper's Table 1 / timm's definition."""

        def __init__(self, image: int = 224, patch: int = 16, dim: int = 768, depth: int = 12,
                     tokens_mlp: int = 384, channels_mlp: int = 3072, classes: int = 1000) -> None:
            super().__init__()
            tokens = (image // patch) ** 2
            self.stem = nn.Conv2d(3, dim, patch, stride=patch)
            self.blocks = nn.Sequential(*[MixerBlock(tokens, dim, tokens_mlp, channels_mlp)
                                          for _ in range(depth)])
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.head = nn.Linear(dim, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x).flatten(2).transpose(1, 2)  # (B, tokens, dim)
            x = self.norm(self.blocks(x))
            return self.head(x.mean(dim=1))

    return MlpMixer


def _gnmt_classes() -> Any:
    import torch
    from torch import nn

    class BahdanauAttention(nn.Module):
        """Normalised Bahdanau attention as in MLPerf's GNMT v2:
        ``score = v . tanh(Wq q + Wk k + b)``, softmax over the source, context = weights @ keys."""

        def __init__(self, hidden: int) -> None:
            super().__init__()
            self.linear_q = nn.Linear(hidden, hidden, bias=False)
            self.linear_k = nn.Linear(hidden, hidden, bias=False)
            self.linear_att = nn.Parameter(torch.empty(hidden).uniform_(-0.1, 0.1))
            self.normalize_scalar = nn.Parameter(torch.tensor(1.0 / hidden ** 0.5))
            self.normalize_bias = nn.Parameter(torch.zeros(hidden))

        def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
            q = self.linear_q(query).unsqueeze(2)  # (B, T, 1, H)
            k = self.linear_k(keys).unsqueeze(1)  # (B, 1, S, H)
            v = self.linear_att / self.linear_att.norm() * self.normalize_scalar
            scores = torch.tanh(q + k + self.normalize_bias) @ v  # (B, T, S)
            return torch.softmax(scores, dim=-1) @ keys  # (B, T, H)

    class Gnmt(nn.Module):
        """GNMT v2 (Wu et al., 2016; MLPerf's rnn_translator): 4-layer LSTM encoder (first layer
        bidirectional, residuals from the third), attention LSTM + 3-layer residual LSTM decoder fed
        with the attention context, vocabulary classifier. Teacher forcing: the decoder runs over
        the whole target sequence, so the graph has no Python-level time loop."""

        def __init__(self, vocab: int = 32320, hidden: int = 1024, layers: int = 4) -> None:
            super().__init__()
            self.enc_embed = nn.Embedding(vocab, hidden)
            self.enc = nn.ModuleList([nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True),
                                      nn.LSTM(2 * hidden, hidden, batch_first=True)]
                                     + [nn.LSTM(hidden, hidden, batch_first=True)
                                        for _ in range(layers - 2)])
            self.dec_embed = nn.Embedding(vocab, hidden)
            self.att_rnn = nn.LSTM(hidden, hidden, batch_first=True)
            self.attention = BahdanauAttention(hidden)
            self.dec = nn.ModuleList([nn.LSTM(2 * hidden, hidden, batch_first=True)
                                      for _ in range(layers - 1)])
            self.classifier = nn.Linear(hidden, vocab)

        def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
            x = self.enc_embed(src)
            x, _ = self.enc[0](x)
            x, _ = self.enc[1](x)
            for rnn in self.enc[2:]:
                y, _ = rnn(x)
                x = x + y
            context = x
            y, _ = self.att_rnn(self.dec_embed(tgt))
            attn = self.attention(y, context)
            x, _ = self.dec[0](torch.cat((y, attn), dim=2))
            for rnn in self.dec[1:]:
                y, _ = rnn(torch.cat((x, attn), dim=2))
                x = x + y
            return self.classifier(x)

    return Gnmt


# ----------------------------------------------------------------------------- builders
def _tokens(vocab: int, seq: int = SEQ_LEN) -> Any:
    import torch

    return torch.randint(0, vocab, (1, seq), dtype=torch.long)


def _image() -> Any:
    import torch

    return torch.randn(1, 3, IMAGE, IMAGE)


def _hf(cls_name: str, config_name: str, inputs: str, **overrides: Any) -> Callable[[], Any]:
    """Builder of ``transformers.<cls_name>(<config_name>(**overrides))``; ``inputs`` is
    ``"tokens"`` (``(1, SEQ_LEN)`` token ids) or ``"image"`` (``(1, 3, IMAGE, IMAGE)`` pixels)."""
    def build() -> tuple[Any, tuple[Any, ...], str, None]:
        import transformers

        config = getattr(transformers, config_name)(**overrides)
        model = getattr(transformers, cls_name)(config)
        args = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        example = (_tokens(config.vocab_size),) if inputs == "tokens" else (_image(),)
        return model, example, f"transformers.{cls_name}({config_name}({args}))", None
    return build


def _build_mixer() -> tuple[Any, tuple[Any, ...], str, dict[str, Any]]:
    cfg = {"image": IMAGE, "patch": 16, "dim": 768, "depth": 12, "tokens_mlp": 384,
           "channels_mlp": 3072, "classes": 1000}
    return (_mixer_classes()(**cfg), (_image(),),
            "graphs/make_zoo.py:MlpMixer (torch.nn; Mixer-B/16 of Tolstikhin et al. 2021)", cfg)


def _unet_classes() -> Any:
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        """U-Net (Ronneberger et al., 2015) with padded convolutions: 4 down and 4 up levels,
        skip connections from each down level to its up level across the whole network."""

        def __init__(self, channels: int = 64, levels: int = 4, classes: int = 2) -> None:
            super().__init__()
            widths = [channels * 2 ** i for i in range(levels + 1)]
            self.down = nn.ModuleList([block(3, widths[0])] + [block(widths[i], widths[i + 1])
                                                                 for i in range(levels)])
            self.upconv = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                         for i in reversed(range(levels))])
            self.up = nn.ModuleList([block(2 * widths[i], widths[i]) for i in reversed(range(levels))])
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Conv2d(widths[0], classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for i, d in enumerate(self.down):
                x = d(x if i == 0 else self.pool(x))
                skips.append(x)
            for upconv, up, skip in zip(self.upconv, self.up, reversed(skips[:-1]), strict=True):
                x = up(torch.cat([skip, upconv(x)], dim=1))
            return self.head(x)

    return UNet


def _build_unet() -> tuple[Any, tuple[Any, ...], str, dict[str, Any]]:
    import torch

    cfg = {"channels": 64, "levels": 4, "classes": 2, "image": 256}
    model = _unet_classes()(channels=cfg["channels"], levels=cfg["levels"], classes=cfg["classes"])
    return (model, (torch.randn(1, 3, cfg["image"], cfg["image"]),),
            "graphs/make_zoo.py:UNet (torch.nn; Ronneberger et al. 2015, padded convolutions)", cfg)


WHISPER_FRAMES, WHISPER_TOKENS = 3000, 32


def _build_whisper() -> tuple[Any, tuple[Any, ...], str, None]:
    import torch
    import transformers

    over = {"d_model": 384, "encoder_layers": 4, "decoder_layers": 4, "encoder_attention_heads": 6,
            "decoder_attention_heads": 6, "encoder_ffn_dim": 1536, "decoder_ffn_dim": 1536, **_NO_CACHE}
    config = transformers.WhisperConfig(**over)
    model = transformers.WhisperModel(config)
    feats = torch.randn(1, config.num_mel_bins, WHISPER_FRAMES)  # 30 s of log-mel frames
    args = ", ".join(f"{k}={v!r}" for k, v in over.items())
    # positional: input_features, attention_mask, decoder_input_ids
    return (model, (feats, None, _tokens(config.vocab_size, WHISPER_TOKENS)),
            f"transformers.WhisperModel(WhisperConfig({args})) (whisper-tiny)", None)


GNMT_SEQ = 64


def _build_gnmt() -> tuple[Any, tuple[Any, ...], str, dict[str, Any]]:
    cfg = {"vocab": 32320, "hidden": 1024, "layers": 4, "src_len": GNMT_SEQ, "tgt_len": GNMT_SEQ}
    model = _gnmt_classes()(vocab=cfg["vocab"], hidden=cfg["hidden"], layers=cfg["layers"])
    return (model, (_tokens(cfg["vocab"], GNMT_SEQ), _tokens(cfg["vocab"], GNMT_SEQ)),
            "graphs/make_zoo.py:Gnmt (torch.nn; GNMT v2 as in MLPerf's rnn_translator)", cfg)


_NO_CACHE = {"use_cache": False}
_LLAMA_SMOLLM = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
                 "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                 "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
                 "tie_word_embeddings": True, **_NO_CACHE}
_BERT_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
               "intermediate_size": 4096}
_EFFNET_B0 = {"width_coefficient": 1.0, "depth_coefficient": 1.0, "image_size": 224,
              "hidden_dim": 1280, "dropout_rate": 0.2, "num_labels": 1000}
_ALBERT_BASE = {"embedding_size": 128, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                "intermediate_size": 3072}
_BART_BASE = {"d_model": 768, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 12,
              "decoder_attention_heads": 12, "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, **_NO_CACHE}
_RING_SMALL, _RING_LARGE = ("ring-4", "ring-8"), ("ring-8", "ring-16")
_MESH = ("mesh-2x2", "mesh-4x4")

ZOO: tuple[ZooModel, ...] = (
    ZooModel("bert-large", _hf("BertModel", "BertConfig", "tokens", **_BERT_LARGE),
             "encoder", "train", _RING_LARGE, dtype="int8",
             note="word embedding 62.5 MB at bf16 exceeds a chip: int8"),
    ZooModel("distilbert", _hf("DistilBertModel", "DistilBertConfig", "tokens"),
             "encoder", "train", _RING_SMALL),
    ZooModel("gpt2", _hf("GPT2Model", "GPT2Config", "tokens", **_NO_CACHE),
             "decoder", "train", _RING_SMALL, dtype="int8",
             note="token embedding 77.2 MB at bf16: int8"),
    ZooModel("smollm-135m", _hf("LlamaModel", "LlamaConfig", "tokens", **_LLAMA_SMOLLM),
             "decoder", "heldout", _RING_SMALL, dtype="int8",
             note="Llama architecture with HuggingFaceTB/SmolLM-135M's config; embedding 56.6 MB "
                  "at bf16: int8"),
    ZooModel("t5-small-encoder", _hf("T5EncoderModel", "T5Config", "tokens", **_NO_CACHE),
             "encoder", "train", _RING_SMALL, note="T5Config() defaults = t5-small"),
    ZooModel("vit-base", _hf("ViTModel", "ViTConfig", "image"),
             "vision-transformer", "train", _RING_LARGE),
    ZooModel("swin-tiny", _hf("SwinForImageClassification", "SwinConfig", "image",
                              num_labels=1000),
             "vision-transformer", "heldout", _MESH),
    ZooModel("resnet-50", _hf("ResNetForImageClassification", "ResNetConfig", "image",
                              num_labels=1000),
             "cnn", "heldout", _MESH),
    ZooModel("mobilenet-v2", _hf("MobileNetV2ForImageClassification", "MobileNetV2Config",
                                 "image", num_labels=1000),
             "cnn", "train", _MESH),
    ZooModel("efficientnet-b0", _hf("EfficientNetForImageClassification", "EfficientNetConfig",
                                    "image", **_EFFNET_B0),
             "cnn", "train", _MESH, note="EfficientNetConfig() defaults are B7; B0's given"),
    ZooModel("convnext-tiny", _hf("ConvNextForImageClassification", "ConvNextConfig", "image",
                                  num_labels=1000),
             "cnn", "train", _MESH),
    ZooModel("mlp-mixer-b16", _build_mixer, "mlp", "train", _MESH),
    ZooModel("gnmt", _build_gnmt, "rnn", "train", _RING_LARGE, dtype="int8",
             note="embeddings and classifier 66.2 MB each at bf16: int8", version=2),
    # held out, of families no train graph has (suite://unseen-v1): cross-layer parameter sharing,
    # encoder-decoders, a convolutional front end, a deep thin stack kept at thousands of nodes,
    # and long skip connections
    ZooModel("albert-base", _hf("AlbertModel", "AlbertConfig", "tokens", **_ALBERT_BASE),
             "shared-weights", "heldout", _RING_SMALL, note="AlbertConfig() defaults are xxlarge; base's given; "
             "one encoder layer's weights shared by all 12"),
    ZooModel("bart-base", _hf("BartModel", "BartConfig", "tokens", **_BART_BASE),
             "encoder-decoder", "heldout", _RING_SMALL, dtype="int8",
             note="token embedding 77.2 MB at bf16: int8; decoder inputs are the shifted encoder tokens"),
    ZooModel("whisper-tiny", _build_whisper, "speech-encoder-decoder", "heldout", _RING_SMALL,
             note="two convolutions over 3,000 log-mel frames, then a 4-layer encoder and decoder"),
    ZooModel("mobilebert", _hf("MobileBertModel", "MobileBertConfig", "tokens"),
             "deep-thin", "heldout", _RING_SMALL, max_nodes=None,
             note="MobileBertConfig() defaults = mobilebert-uncased: 24 thin layers of 4 feed-forward "
                  "blocks each; not coarsened"),
    ZooModel("unet", _build_unet, "cnn-skip", "heldout", _MESH),
)


# ----------------------------------------------------------------------------- pipeline
def feasible_on(graph: Any, preset: str) -> tuple[bool, str]:
    """Whether the repair of an equal-work split is a valid partition of ``graph`` on ``preset``."""
    from mcm_gym import InfeasibleError, Problem, get_hardware
    from mcm_gym.search import split_by_work

    try:
        problem = Problem(graph, get_hardware(preset))
    except InfeasibleError as exc:
        return False, str(exc)
    res = problem.repair(split_by_work(problem))
    if res.partition is None or not problem.is_valid(res.partition):
        return False, f"repair status {res.status}"
    return True, res.status


def build_one(entry: ZooModel) -> Any:
    """Build, import, coarsen and check one model; returns the :class:`mcm_gym.Graph`."""
    import torch

    from mcm_gym import Graph
    from mcm_gym.instances import coarsen, from_torch

    torch.manual_seed(0)
    model, inputs, source, cfg = entry.build()
    int8 = entry.dtype == "int8"
    meta: dict[str, Any] = {
        "source": source,
        "family": entry.family,
        "generator": f"graphs/make_zoo.py --only {entry.name}",
        "split": entry.split,
        "dtype": entry.dtype,
        "batch": 1,
        "max_nodes": entry.max_nodes,
        **({"config": cfg} if cfg is not None else {}),
        **({"dtype_note": "weights and activations stored as int8 (1 byte per element); FLOPs "
                          "counted on the float model"} if int8 else {}),
        **({"note": entry.note} if entry.note else {}),
    }
    g = from_torch(model, inputs, dtype="float32" if int8 else entry.dtype,
                   dtype_bytes=1 if int8 else None, name=entry.name,
                   graph_id=f"zoo://{entry.name}-v{entry.version}", metadata=meta)
    totals = g.metadata["totals"]
    flops, ref = totals["flops"], totals["flop_counter_flops"]
    if abs(flops - ref) > 1e-3 * max(ref, 1):
        raise SystemExit(f"{entry.name}: node FLOPs {flops} != counter FLOPs {ref}")
    if totals["weight_bytes"] != totals["param_bytes"]:
        raise SystemExit(f"{entry.name}: weight_bytes {totals['weight_bytes']} != "
                         f"param_bytes {totals['param_bytes']}")
    if entry.max_nodes is not None and g.n > entry.max_nodes:
        g = coarsen(g, entry.max_nodes, graph_id=g.id).graph
    for preset in entry.presets:
        ok, why = feasible_on(g, preset)
        if ok:
            break
        print(f"  {entry.name}: not feasible on {preset} ({why})")
    else:
        raise SystemExit(f"{entry.name}: infeasible on all of {entry.presets}")
    meta2 = dict(g.metadata)
    meta2["default_hardware"] = preset
    return Graph(g.nodes, g.edges, name=g.name, id=g.id, metadata=meta2, shared=g.shared)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="build only these models")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where to write the JSON files")
    ns = parser.parse_args(argv)
    by_name = {e.name: e for e in ZOO}
    if ns.list:
        for e in ZOO:
            print(f"{e.name:<18} {e.family:<20} {e.dtype:<9} {e.split:<8} {', '.join(e.presets)}")
        return 0
    unknown = sorted(set(ns.only or ()) - set(by_name))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(by_name)}")
    import torch

    torch.set_num_threads(1)
    chosen = [by_name[n] for n in ns.only] if ns.only else list(ZOO)
    t_all = time.perf_counter()
    rows = []
    for entry in chosen:
        t0 = time.perf_counter()
        g = build_one(entry)
        path = ns.out_dir / f"{entry.name}.json"
        g.save(path)
        dt = time.perf_counter() - t0
        co = g.metadata.get("coarsening")
        rows.append((entry.name, g.n, co["original_nodes"] if co else g.n, g.total_flops / 1e9,
                     g.total_weight_bytes / 1e6, entry.dtype, g.metadata["default_hardware"],
                     entry.split, path.stat().st_size / 1e3, dt))
        print(f"wrote {path} ({dt:.1f} s)", flush=True)
    print(f"\n{'graph':<18} {'nodes':>6} {'(orig)':>7} {'GFLOP':>8} {'weights MB':>11} "
          f"{'dtype':>9} "
          f"{'preset':>9} {'split':>8} {'KB':>6} {'s':>6}")
    for r in rows:
        print(f"{r[0]:<18} {r[1]:>6} {r[2]:>7} {r[3]:>8.2f} {r[4]:>11.1f} {r[5]:>9} {r[6]:>9} "
              f"{r[7]:>8} {r[8]:>6.0f} {r[9]:>6.1f}")
    print(f"total {time.perf_counter() - t_all:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
