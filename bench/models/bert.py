"""BERT-base encoder + pooler written the way a transformers/TorchScript export at opset 17
looks: decomposed LayerNorm, erf GELU, additive mask bias, Reshape shapes computed at run time."""

from __future__ import annotations

import numpy as np
import onnx

from ._graph import FLOAT, INT64, GraphBuilder, check_scale

PRESETS = {
    "full": {
        "vocab": 30522,
        "hidden": 768,
        "layers": 12,
        "heads": 12,
        "ffn": 3072,
        "seq": 128,
        "max_pos": 512,
    },
    "tiny": {
        "vocab": 100,
        "hidden": 32,
        "layers": 2,
        "heads": 2,
        "ffn": 64,
        "seq": 16,
        "max_pos": 64,
    },
}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class _Bert:
    """Holds the builder and the shared constants while the layers are emitted."""

    def __init__(self, g: GraphBuilder, cfg: dict):
        self.g, self.cfg = g, cfg

        def i64(name: str, v) -> str:
            return g.init(name, np.array(v, dtype=np.int64))

        def f32(name: str, v) -> str:
            return g.init(name, np.array(v, dtype=np.float32))

        self.idx0, self.idx1 = i64("const_0", 0), i64("const_1", 1)
        self.axes0, self.axes1 = i64("axes_0", [0]), i64("axes_1", [1])
        self.heads_dims = i64("heads_head_dim", [cfg["heads"], cfg["hidden"] // cfg["heads"]])
        self.hidden_dim = i64("hidden_dim", [cfg["hidden"]])
        self.eps, self.two = f32("ln_eps", 1e-12), f32("const_2f", 2.0)
        self.one, self.half = f32("const_1f", 1.0), f32("const_half", 0.5)
        self.sqrt2 = f32("const_sqrt2", np.sqrt(2.0))
        self.score_scale = f32("sqrt_head_dim", np.sqrt(cfg["hidden"] // cfg["heads"]))

    def weight(self, name: str, shape) -> str:
        """Embedding tables: N(0, 0.02^2), BERT's initializer range."""
        return self.g.normal(name, shape, 0.02)

    def dense(self, x: str, n_in: int, n_out: int, name: str) -> str:
        """MatMul by a [in, out] weight then Add bias: what torch emits for nn.Linear on 3-D input.

        Weights are N(0, 1/n_in) (trained BERT-base is close to that), not the 0.02 used at
        pre-training start: with 0.02 the tiny model's attention would be uniform and its
        pooler output would hardly depend on the input."""
        w = self.g.normal(f"{name}.weight", (n_in, n_out), 1.0 / np.sqrt(n_in))
        y = self.g.op("MatMul", [x, w], name=name)
        return self.g.op("Add", [self.g.normal(f"{name}.bias", (n_out,), 0.02), y])

    def layer_norm(self, x: str, name: str, out: str | None = None) -> str:
        """LayerNorm over the last axis in the decomposed form torch emits."""
        g, h = self.g, self.cfg["hidden"]
        mean = g.op("ReduceMean", [x], axes=[-1], keepdims=1)
        d = g.op("Sub", [x, mean])
        var = g.op("ReduceMean", [g.op("Pow", [d, self.two])], axes=[-1], keepdims=1)
        y = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [var, self.eps])])])
        y = g.op("Mul", [y, g.normal(f"{name}.weight", (h,), 0.05, mean=1.0)])
        return g.op("Add", [y, g.normal(f"{name}.bias", (h,), 0.02)], out=out)

    def dims(self, x: str) -> tuple[str, str]:
        """[batch] and [sequence] of x as 1-D int64 tensors: Shape -> Gather -> Unsqueeze."""
        g = self.g
        shape = g.op("Shape", [x])
        return tuple(
            g.op("Unsqueeze", [g.op("Gather", [shape, i], axis=0), self.axes0])
            for i in (self.idx0, self.idx1)
        )

    def attention(self, x: str, mask_bias: str, name: str) -> str:
        g, h = self.g, self.cfg["hidden"]
        batch, seq = self.dims(x)
        split = g.op("Concat", [batch, seq, self.heads_dims], axis=0)

        def heads(t: str, perm: list[int]) -> str:
            return g.op("Transpose", [g.op("Reshape", [t, split])], perm=perm)

        q = heads(self.dense(x, h, h, f"{name}.query"), [0, 2, 1, 3])
        k = heads(self.dense(x, h, h, f"{name}.key"), [0, 2, 3, 1])
        v = heads(self.dense(x, h, h, f"{name}.value"), [0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k]), self.score_scale])
        probs = g.op("Softmax", [g.op("Add", [scores, mask_bias])], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        merged = g.op("Concat", [batch, seq, self.hidden_dim], axis=0)
        return g.op("Reshape", [ctx, merged])

    def gelu(self, x: str) -> str:
        """x * 0.5 * (1 + erf(x / sqrt 2)), in the order transformers' export emits it."""
        g = self.g
        e = g.op("Add", [g.op("Erf", [g.op("Div", [x, self.sqrt2])]), self.one])
        return g.op("Mul", [g.op("Mul", [x, e]), self.half])

    def layer(self, x: str, mask_bias: str, i: int, out: str | None) -> str:
        h, f = self.cfg["hidden"], self.cfg["ffn"]
        name = f"encoder.layer.{i}"
        a = self.dense(
            self.attention(x, mask_bias, f"{name}.attention.self"),
            h,
            h,
            f"{name}.attention.output.dense",
        )
        x = self.layer_norm(self.g.op("Add", [a, x]), f"{name}.attention.output.LayerNorm")
        y = self.gelu(self.dense(x, h, f, f"{name}.intermediate.dense"))
        y = self.dense(y, f, h, f"{name}.output.dense")
        return self.layer_norm(self.g.op("Add", [y, x]), f"{name}.output.LayerNorm", out=out)


def build(scale: str = "full", seed: int = 4, **overrides) -> onnx.ModelProto:
    """Builds BERT (`full`: base, 12 layers, hidden 768; `tiny`: 2 layers, hidden 32, vocab 100).

    Inputs `input_ids`, `attention_mask`, `token_type_ids`: int64 [batch, sequence].
    Outputs `last_hidden_state` [batch, sequence, hidden], `pooler_output` [batch, hidden].

    Example:
        >>> m = build("tiny")
        >>> [o.name for o in m.graph.output]
        ['last_hidden_state', 'pooler_output']
    """
    check_scale(scale)
    cfg = {**PRESETS[scale], **overrides}
    g = GraphBuilder(f"bert_{scale}", seed)
    b = _Bert(g, cfg)
    h = cfg["hidden"]
    ids, mask, types = (g.input(n, INT64, ["batch", "sequence"]) for n in _INPUTS)

    # Embeddings: word + token type + position (position ids sliced from a buffer to seq length).
    emb = g.op("Gather", [b.weight("embeddings.word_embeddings.weight", (cfg["vocab"], h)), ids])
    tt = g.op("Gather", [b.weight("embeddings.token_type_embeddings.weight", (2, h)), types])
    _, seq = b.dims(ids)
    pos_buf = g.init("embeddings.position_ids", np.arange(cfg["max_pos"], dtype=np.int64)[None])
    pos_ids = g.op("Slice", [pos_buf, g.init("slice_start", np.array([0])), seq, b.axes1])
    pe = g.op(
        "Gather", [b.weight("embeddings.position_embeddings.weight", (cfg["max_pos"], h)), pos_ids]
    )
    x = b.layer_norm(g.op("Add", [g.op("Add", [emb, tt]), pe]), "embeddings.LayerNorm")

    # Additive mask bias: (1 - mask) * -10000, broadcast over heads and query positions.
    m = g.op("Cast", [g.op("Unsqueeze", [mask, g.init("axes_1_2", np.array([1, 2]))])], to=FLOAT)
    mask_bias = g.op("Mul", [g.op("Sub", [b.one, m]), g.init("mask_value", np.float32(-10000.0))])

    for i in range(cfg["layers"]):
        x = b.layer(x, mask_bias, i, out="last_hidden_state" if i == cfg["layers"] - 1 else None)

    first = g.op("Gather", [x, b.idx0], axis=1)
    w = g.normal("pooler.dense.weight", (h, h), 1.0 / np.sqrt(h))
    pooled = g.op("Gemm", [first, w, g.normal("pooler.dense.bias", (h,), 0.02)], transB=1)
    g.op("Tanh", [pooled], out="pooler_output")
    g.output("last_hidden_state", FLOAT, ["batch", "sequence", h])
    g.output("pooler_output", FLOAT, ["batch", h])
    return g.model(f"BERT ({scale}) encoder with random weights")


def sample_inputs(batch: int, scale: str = "full", seed: int = 0) -> dict[str, np.ndarray]:
    """Random token ids (first token [CLS]), right padding, two segments; int64 [batch, seq]."""
    check_scale(scale)
    cfg = PRESETS[scale]
    rng = np.random.default_rng(seed)
    s = cfg["seq"]
    ids = rng.integers(1, cfg["vocab"], size=(batch, s), dtype=np.int64)
    ids[:, 0] = 101 if cfg["vocab"] > 101 else 1
    mask = np.zeros((batch, s), dtype=np.int64)
    types = np.zeros((batch, s), dtype=np.int64)
    for r, n in enumerate(rng.integers(s // 2, s + 1, size=batch)):
        mask[r, :n] = 1
        types[r, n // 2 : n] = 1
        ids[r, n:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
