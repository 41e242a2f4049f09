"""config.json parsing, version policies, and the config completed from the model."""

import json

import pytest
from runnx.server.config import (
    ConfigError,
    ModelConfig,
    ServeDefaults,
    TensorSpec,
    load_config_file,
    parse_config,
    resolve,
    select_versions,
)


class Arg:  # what InferenceSession.get_inputs() returns, reduced to the fields used
    def __init__(self, name, type_, shape):
        self.name, self.type, self.shape = name, type_, shape


def test_full_config_parses():
    c = parse_config({
        "name": "m", "platform": "onnxruntime_onnx", "max_batch_size": 16,
        "dynamic_batching": {"max_queue_delay_microseconds": 250, "preferred_batch_size": [8, 4, 8],
                             "default_queue_policy": {"max_queue_size": 64}},
        "instance_group": [{"count": 2, "kind": "KIND_CPU"}, {"count": 1}],
        "version_policy": {"specific": {"versions": [3, "1"]}},
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [64]}],
        "output": [{"name": "y", "dims": [-1]}]})
    assert c.max_batch_size == 16 and c.max_queue_delay_us == 250
    assert c.preferred_batch_sizes == [4, 8] and c.max_queue_size == 64
    assert c.instance_count == 3
    assert c.version_policy == ("specific", [1, 3])
    assert c.inputs[0].datatype == "FP32" and c.inputs[0].dims == [64]
    assert c.outputs[0].datatype is None


@pytest.mark.parametrize("raw, message", [
    ({"max_batch_siz": 4}, "unknown config field"),
    ({"max_batch_size": -1}, "max_batch_size must be an integer >= 0"),
    ({"max_batch_size": True}, "max_batch_size"),
    ({"dynamic_batching": {"preferred_batch_size": [0]}}, "positive"),
    ({"instance_group": [{"kind": "KIND_GPU"}]}, "KIND_CPU"),
    ({"instance_group": [{"count": 0}]}, "count must be an integer >= 1"),
    ({"version_policy": {"newest": {}}}, "unknown policy"),
    ({"version_policy": {"latest": {"num_versions": 0}}}, "num_versions"),
    ({"version_policy": {"specific": {"versions": []}}}, "non-empty"),
    ({"input": [{"name": "x", "data_type": "FP32"}]}, "TYPE_FP32"),
    ({"input": [{"name": "x", "dims": [-2]}]}, "dims"),
    ({"default_model_filename": "a/b.onnx"}, "plain file name"),
    ([], "JSON object"),
])
def test_bad_configs_name_the_field(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_config_file_errors_name_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="config.json: not valid JSON"):
        load_config_file(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"max_batch_size": "x"}))
    with pytest.raises(ConfigError, match="config.json: max_batch_size"):
        load_config_file(str(tmp_path))
    assert load_config_file(str(tmp_path / "nothing")).max_batch_size is None


def test_version_policies():
    assert select_versions(("latest", 1), [1, 3, 2]) == [3]
    assert select_versions(("latest", 2), [1, 10, 2]) == [10, 2]
    assert select_versions(("latest", 5), [1]) == [1]
    assert select_versions(("all",), [2, 1]) == [2, 1]
    assert select_versions(("specific", [1, 2]), [1, 2, 3]) == [2, 1]
    with pytest.raises(ConfigError, match=r"\[4\]"):
        select_versions(("specific", [1, 4]), [1, 2])


BATCHED_IN = [Arg("x", "tensor(float)", ["batch", 64]), Arg("ids", "tensor(int64)", [None, "seq"])]
BATCHED_OUT = [Arg("y", "tensor(float)", ["batch", 1])]


def test_autocomplete_batch_dimension():
    rc = resolve("m", ModelConfig(), BATCHED_IN, BATCHED_OUT,
                 ServeDefaults(max_batch_size=8, max_queue_delay_us=500))
    assert rc.max_batch_size == 8
    assert [(t.name, t.datatype, t.dims) for t in rc.inputs] == [("x", "FP32", [64]),
                                                                ("ids", "INT64", [-1])]
    tj = rc.triton_json()
    assert tj["max_batch_size"] == 8 and tj["input"][0]["dims"] == [64]
    assert tj["input"][1]["data_type"] == "TYPE_INT64"
    assert tj["dynamic_batching"]["max_queue_delay_microseconds"] == 500
    assert tj["output"][0] == {"name": "y", "data_type": "TYPE_FP32", "dims": [1],
                               "label_filename": "", "is_shape_tensor": False}


def test_fixed_first_dimension_means_no_batching():
    ins = [Arg("x", "tensor(float)", [2, 3])]
    outs = [Arg("y", "tensor(float)", [2, 3])]
    rc = resolve("m", ModelConfig(), ins, outs, ServeDefaults())
    assert rc.max_batch_size == 0 and rc.inputs[0].dims == [2, 3]
    assert "dynamic_batching" not in rc.triton_json()
    with pytest.raises(ConfigError, match="variable first"):
        resolve("m", parse_config({"max_batch_size": 4}), ins, outs, ServeDefaults())
    # max_batch_size 0 on a batchable model keeps the leading dim in the shapes
    rc = resolve("m", parse_config({"max_batch_size": 0}), BATCHED_IN, BATCHED_OUT, ServeDefaults())
    assert rc.max_batch_size == 0 and rc.inputs[0].dims == [-1, 64]


def test_overrides_are_checked_against_the_model():
    ok = parse_config({"input": [{"name": "ids", "data_type": "TYPE_INT64", "dims": [128]}]})
    rc = resolve("m", ok, BATCHED_IN, BATCHED_OUT, ServeDefaults())
    assert rc.inputs[1].dims == [128]
    for raw, message in [
        ({"input": [{"name": "z"}]}, "not among the model.s inputs"),
        ({"input": [{"name": "x", "data_type": "TYPE_FP16"}]}, "TYPE_FP32"),
        ({"input": [{"name": "x", "dims": [32]}]}, "do not fit"),
        ({"output": [{"name": "y", "dims": [1, 1]}]}, "do not fit"),
        ({"max_batch_size": 4, "dynamic_batching": {"preferred_batch_size": [8]}}, "exceeds"),
    ]:
        with pytest.raises(ConfigError, match=message):
            resolve("m", parse_config(raw), BATCHED_IN, BATCHED_OUT, ServeDefaults())


def test_unservable_types_fail_clearly():
    with pytest.raises(ConfigError, match="complex64"):
        resolve("m", ModelConfig(), [Arg("x", "tensor(complex64)", [1])], BATCHED_OUT,
                ServeDefaults())
    assert TensorSpec("a", "FP32", [1]).dims == [1]


def test_yaml_config(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "config.yaml").write_text(
        "max_batch_size: 4\ndynamic_batching:\n  max_queue_delay_microseconds: 100\n"
        "version_policy:\n  all: {}\n")
    c = load_config_file(str(tmp_path))
    assert c.max_batch_size == 4 and c.max_queue_delay_us == 100 and c.version_policy == ("all",)
    (tmp_path / "config.yaml").write_text("max_batch_size: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="keep one"):
        load_config_file(str(tmp_path))


def test_priority_levels_follow_triton():
    rc = resolve("m", ModelConfig(), BATCHED_IN, BATCHED_OUT, ServeDefaults())
    assert rc.batcher_priority(0) == 1 and rc.batcher_priority(7) == 7  # 1 is the highest
    c = parse_config({"dynamic_batching": {"priority_levels": 4, "default_priority_level": 3}})
    rc = resolve("m", c, BATCHED_IN, BATCHED_OUT, ServeDefaults())
    assert rc.batcher_priority(0) == 3 and rc.batcher_priority(1) == 1
    with pytest.raises(ValueError, match="priority_levels 4"):
        rc.batcher_priority(5)
    assert rc.triton_json()["dynamic_batching"]["default_priority_level"] == 3
    with pytest.raises(ConfigError, match="exceeds"):
        parse_config({"dynamic_batching": {"priority_levels": 2, "default_priority_level": 3}})


def test_max_inline_us_from_defaults_or_config():
    args = [Arg("x", "tensor(float)", ["n", 4])], [Arg("y", "tensor(float)", ["n", 4])]
    assert resolve("m", parse_config({}), *args, ServeDefaults()).max_inline_us == 1000
    assert resolve("m", parse_config({}), *args, ServeDefaults(max_inline_us=0)).max_inline_us == 0
    rc = resolve("m", parse_config({"max_inline_us": 250}), *args, ServeDefaults(max_inline_us=0))
    assert rc.max_inline_us == 250
    assert rc.triton_json()["parameters"] == {"max_inline_us": {"string_value": "250"}}
    with pytest.raises(ConfigError, match="max_inline_us must be an integer >= 0"):
        parse_config({"max_inline_us": -1})
