"""Per-model serving configuration: ``models/<name>/config.json``, completed from the model.

The file uses Triton's JSON field names, so a Triton user's settings carry over::

    {"max_batch_size": 16,
     "dynamic_batching": {"max_queue_delay_microseconds": 500, "preferred_batch_size": [8, 16]},
     "instance_group": [{"count": 2}],
     "version_policy": {"latest": {"num_versions": 2}},
     "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [64]}]}

Every field is optional. What the file leaves out is derived from the model as Triton's
auto-complete does: when every input and output has a variable leading dimension, that is the
batch dimension and ``max_batch_size`` takes the server default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from .kserve import datatype_of_onnx, triton_type


class ConfigError(ValueError):
    """A config file or override that cannot be used; the model's load fails with this message."""


@dataclass
class TensorSpec:
    name: str
    datatype: str            # KServe name, e.g. FP32
    dims: list[int]          # without the batch dimension when the model batches; -1 = variable


@dataclass
class ServeDefaults:
    """Server-wide defaults that a model's config.json may override (the CLI sets these)."""

    max_batch_size: int | None = None    # None: 32 for models with a batch dimension
    # 0: a batch leaves as soon as a worker is free, with everything queued by then (Triton's
    # default too); on a CPU, batches form from the requests that arrive while one computes.
    max_queue_delay_us: int = 0
    instance_count: int = 1
    max_queue_size: int = 1024
    intra_op_threads: int = 0
    # A lone request to an idle model whose batches take at most this long runs at once on the
    # event loop's thread (no worker hand-off); 0: always through the batch workers.
    max_inline_us: int = 1000


AUTO_MAX_BATCH_SIZE = 32

# Triton fields that runnx accepts and ignores (they carry no meaning for a CPU ONNX runtime).
_IGNORED = {"name", "platform", "backend", "runtime", "parameters", "optimization",
            "model_warmup", "response_cache", "model_transaction_policy", "metric_tags"}
_KNOWN = {"max_batch_size", "dynamic_batching", "instance_group", "version_policy", "input",
          "output", "default_model_filename", "max_queue_size", "max_inline_us"} | _IGNORED


@dataclass
class ModelConfig:
    """What config.json says (None: not said)."""

    max_batch_size: int | None = None
    max_queue_delay_us: int | None = None
    preferred_batch_sizes: list[int] = field(default_factory=list)
    instance_count: int | None = None
    max_queue_size: int | None = None
    max_inline_us: int | None = None             # runnx's own field (see ServeDefaults)
    priority_levels: int = 0                     # 0: any priority value is accepted
    default_priority_level: int = 1              # what a request without priority gets
    version_policy: tuple = ("latest", 1)        # ("latest", n) | ("all",) | ("specific", [v..])
    inputs: list[TensorSpec] | None = None
    outputs: list[TensorSpec] | None = None
    default_model_filename: str = "model.onnx"
    raw: dict = field(default_factory=dict)


def _int(d: dict, key: str, where: str, minimum: int = 0) -> int | None:
    if key not in d:
        return None
    v = d[key]
    if isinstance(v, str) and v.lstrip("-").isdigit():  # protobuf JSON writes int64 as strings
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{where}{key} must be an integer >= {minimum}, got {v!r}")
    return v


def _tensors(items: Any, key: str) -> list[TensorSpec]:
    if not isinstance(items, list):
        raise ConfigError(f"'{key}' must be a list")
    out = []
    for t in items:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise ConfigError(f"each entry of '{key}' needs a string 'name'")
        dt = t.get("data_type")
        datatype = None
        if dt is not None:
            if not isinstance(dt, str) or not dt.startswith("TYPE_"):
                raise ConfigError(f"{key} '{t['name']}': data_type must look like TYPE_FP32, "
                                  f"got {dt!r}")
            datatype = "BYTES" if dt == "TYPE_STRING" else dt[len("TYPE_"):]
        dims = t.get("dims")
        if dims is not None and (not isinstance(dims, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in dims)):
            raise ConfigError(f"{key} '{t['name']}': dims must be a list of integers >= -1")
        out.append(TensorSpec(t["name"], datatype, dims))
    return out


def parse_config(raw: dict) -> ModelConfig:
    """Checks a config.json object; raises ConfigError naming the field at fault."""
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a JSON object")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}; known: {sorted(_KNOWN - _IGNORED)}")
    c = ModelConfig(raw=raw)
    c.max_batch_size = _int(raw, "max_batch_size", "")
    c.max_queue_size = _int(raw, "max_queue_size", "", 1)
    c.max_inline_us = _int(raw, "max_inline_us", "")
    db = raw.get("dynamic_batching")
    if db is not None:
        if not isinstance(db, dict):
            raise ConfigError("dynamic_batching must be an object")
        c.max_queue_delay_us = _int(db, "max_queue_delay_microseconds", "dynamic_batching.")
        pref = db.get("preferred_batch_size", [])
        if not isinstance(pref, list) or not all(isinstance(p, int) and p > 0 for p in pref):
            raise ConfigError("dynamic_batching.preferred_batch_size must be a list of positive "
                              "integers")
        c.preferred_batch_sizes = sorted(set(pref))
        c.priority_levels = _int(db, "priority_levels", "dynamic_batching.") or 0
        level = _int(db, "default_priority_level", "dynamic_batching.", 1)
        if level is not None:
            if c.priority_levels and level > c.priority_levels:
                raise ConfigError(f"dynamic_batching.default_priority_level {level} exceeds "
                                  f"priority_levels {c.priority_levels}")
            c.default_priority_level = level
        policy = db.get("default_queue_policy") or {}
        c.max_queue_size = _int(policy, "max_queue_size", "default_queue_policy.", 1) or \
            c.max_queue_size
    groups = raw.get("instance_group")
    if groups is not None:
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise ConfigError("instance_group must be a list of objects")
        if any(g.get("kind", "KIND_CPU") not in ("KIND_CPU", "KIND_AUTO") for g in groups):
            raise ConfigError("instance_group: only KIND_CPU is supported")
        c.instance_count = sum(_int(g, "count", "instance_group[].", 1) or 1 for g in groups)
    vp = raw.get("version_policy")
    if vp is not None:
        if not isinstance(vp, dict) or len(vp) != 1:
            raise ConfigError("version_policy must be one of {\"latest\": {\"num_versions\": N}}, "
                              "{\"all\": {}}, {\"specific\": {\"versions\": [...]}}")
        (kind, body), = vp.items()
        body = body or {}
        if kind == "latest":
            c.version_policy = ("latest", _int(body, "num_versions", "version_policy.latest.", 1)
                                or 1)
        elif kind == "all":
            c.version_policy = ("all",)
        elif kind == "specific":
            vs = body.get("versions")
            if not isinstance(vs, list) or not vs or not all(
                    str(v).isdigit() for v in vs):
                raise ConfigError("version_policy.specific.versions must be a non-empty list of "
                                  "version numbers")
            c.version_policy = ("specific", sorted({int(v) for v in vs}))
        else:
            raise ConfigError(f"version_policy: unknown policy {kind!r} (latest, all, specific)")
    if raw.get("input") is not None:
        c.inputs = _tensors(raw["input"], "input")
    if raw.get("output") is not None:
        c.outputs = _tensors(raw["output"], "output")
    fname = raw.get("default_model_filename")
    if fname is not None:
        if not isinstance(fname, str) or not fname or os.sep in fname:
            raise ConfigError("default_model_filename must be a plain file name")
        c.default_model_filename = fname
    return c


def load_config_file(model_dir: str) -> ModelConfig:
    """``config.json``, or ``config.yaml``/``config.yml`` (same fields; needs PyYAML)."""
    found = [n for n in ("config.json", "config.yaml", "config.yml")
             if os.path.exists(os.path.join(model_dir, n))]
    if not found:
        return ModelConfig()
    if len(found) > 1:
        raise ConfigError(f"{model_dir} has {found}: keep one")
    path = os.path.join(model_dir, found[0])
    try:
        with open(path, encoding="utf-8") as f:
            if path.endswith(".json"):
                raw = json.load(f)
            else:
                try:
                    import yaml
                except ImportError:
                    raise ConfigError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), "
                                      f"or write config.json") from None
                raw = yaml.safe_load(f)
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None
    except Exception as e:  # yaml.YAMLError is no ValueError
        if type(e).__module__.startswith("yaml"):
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        raise
    try:
        return parse_config(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def select_versions(policy: tuple, available: list[int]) -> list[int]:
    """The versions a policy serves, newest first. ``available`` are the version folders."""
    avail = sorted(set(available), reverse=True)
    if policy[0] == "latest":
        return avail[:policy[1]]
    if policy[0] == "all":
        return avail
    missing = [v for v in policy[1] if v not in avail]
    if missing:
        raise ConfigError(f"version_policy.specific names version(s) {missing} that have no folder "
                          f"(found {sorted(avail)})")
    return sorted(policy[1], reverse=True)


@dataclass
class ResolvedConfig:
    """The config a model is served with: the file's settings completed from the model."""

    name: str
    max_batch_size: int                 # 0: the model does not batch
    max_queue_delay_us: int
    preferred_batch_sizes: list[int]
    instance_count: int
    max_queue_size: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    version_policy: tuple
    default_model_filename: str
    priority_levels: int = 0
    default_priority_level: int = 1
    max_inline_us: int = 1000

    def batcher_priority(self, requested: int) -> int:
        """KServe ``priority`` (1 highest, 0 = the default level) -> the Batcher's (lower first).
        Raises ValueError past ``priority_levels``."""
        if requested == 0:
            return self.default_priority_level
        if self.priority_levels and requested > self.priority_levels:
            raise ValueError(f"priority {requested} exceeds the model's priority_levels "
                             f"{self.priority_levels}")
        return requested

    def triton_json(self) -> dict:
        """The model configuration as Triton's ``GET /v2/models/{m}/config`` renders it
        (perf_analyzer reads max_batch_size, input/output names and dims, dynamic_batching)."""
        policy = {"latest": lambda p: {"latest": {"num_versions": p[1]}},
                  "all": lambda p: {"all": {}},
                  "specific": lambda p: {"specific": {"versions": p[1]}}}[self.version_policy[0]]
        cfg: dict[str, Any] = {
            "name": self.name,
            "platform": "onnxruntime_onnx",
            "backend": "runnx",
            "version_policy": policy(self.version_policy),
            "max_batch_size": self.max_batch_size,
            "input": [{"name": t.name, "data_type": triton_type(t.datatype), "format": "FORMAT_NONE",
                       "dims": t.dims, "is_shape_tensor": False, "allow_ragged_batch": False,
                       "optional": False} for t in self.inputs],
            "output": [{"name": t.name, "data_type": triton_type(t.datatype), "dims": t.dims,
                        "label_filename": "", "is_shape_tensor": False} for t in self.outputs],
            "instance_group": [{"name": f"{self.name}_0", "kind": "KIND_CPU",
                                "count": self.instance_count, "gpus": []}],
            "default_model_filename": self.default_model_filename,
            # runnx's own setting, where Triton keeps backend parameters
            "parameters": {"max_inline_us": {"string_value": str(self.max_inline_us)}},
            "model_transaction_policy": {"decoupled": False},
            "response_cache": {"enable": False},
        }
        if self.max_batch_size > 0:
            cfg["dynamic_batching"] = {
                "preferred_batch_size": self.preferred_batch_sizes,
                "max_queue_delay_microseconds": self.max_queue_delay_us,
                "preserve_ordering": False,
                "default_queue_policy": {"max_queue_size": self.max_queue_size},
                "priority_levels": self.priority_levels,
                "default_priority_level": self.default_priority_level,
            }
        return cfg


def _dims(shape: list) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def resolve(name: str, config: ModelConfig, model_inputs: list, model_outputs: list,
            defaults: ServeDefaults) -> ResolvedConfig:
    """Completes ``config`` from the model's NodeArgs (``.name``, ``.type``, ``.shape``)."""
    def specs(args, kind):
        out = []
        for a in args:
            try:
                out.append(TensorSpec(a.name, datatype_of_onnx(a.type), _dims(a.shape)))
            except ValueError as e:
                raise ConfigError(f"{kind} '{a.name}': {e}") from None
        return out

    inputs, outputs = specs(model_inputs, "input"), specs(model_outputs, "output")
    batchable = all(t.dims and t.dims[0] == -1 for t in inputs + outputs)
    mbs = config.max_batch_size
    if mbs is None:
        mbs = defaults.max_batch_size if defaults.max_batch_size is not None else \
            AUTO_MAX_BATCH_SIZE
        if not batchable:
            mbs = 0
    elif mbs > 0 and not batchable:
        fixed = [t.name for t in inputs + outputs if not t.dims or t.dims[0] != -1]
        raise ConfigError(f"max_batch_size {mbs} needs a variable first (batch) dimension on "
                          f"every input and output; {fixed} have none")
    if mbs > 0:
        for t in inputs + outputs:
            t.dims = t.dims[1:]
    for overrides, specs_, kind in ((config.inputs, inputs, "input"),
                                    (config.outputs, outputs, "output")):
        for o in overrides or []:
            match = next((t for t in specs_ if t.name == o.name), None)
            if match is None:
                raise ConfigError(f"config {kind} '{o.name}' is not among the model's {kind}s "
                                  f"(it has {[t.name for t in specs_]})")
            if o.datatype is not None and o.datatype != match.datatype:
                raise ConfigError(f"config {kind} '{o.name}': data_type TYPE_{o.datatype} but the "
                                  f"model has {triton_type(match.datatype)}")
            if o.dims is not None:
                if len(o.dims) != len(match.dims) or any(
                        m != -1 and d != m for d, m in zip(o.dims, match.dims)):
                    raise ConfigError(f"config {kind} '{o.name}': dims {o.dims} do not fit the "
                                      f"model's {match.dims}"
                                      + (" (without the batch dimension)" if mbs > 0 else ""))
                match.dims = list(o.dims)
    pref = [p for p in config.preferred_batch_sizes]
    if mbs > 0 and any(p > mbs for p in pref):
        raise ConfigError(f"preferred_batch_size {pref} exceeds max_batch_size {mbs}")
    delay = config.max_queue_delay_us
    return ResolvedConfig(
        name=name,
        max_batch_size=mbs,
        max_queue_delay_us=defaults.max_queue_delay_us if delay is None else delay,
        preferred_batch_sizes=pref,
        instance_count=config.instance_count or defaults.instance_count,
        max_queue_size=config.max_queue_size or defaults.max_queue_size,
        inputs=inputs,
        outputs=outputs,
        version_policy=config.version_policy,
        default_model_filename=config.default_model_filename,
        priority_levels=config.priority_levels,
        default_priority_level=config.default_priority_level,
        max_inline_us=defaults.max_inline_us if config.max_inline_us is None else
        config.max_inline_us,
    )
