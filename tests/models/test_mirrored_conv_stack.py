import math

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_recursive_ae import MirroredConvStack, SharedBatchNorm


@st.composite
def stack_arguments(draw):
    depth = draw(st.integers(1, 5))
    return {
        "filters": draw(st.lists(st.integers(1, 6), min_size=depth, max_size=depth)),
        "input_shape": (
            draw(st.integers(1, 40)),
            draw(st.integers(1, 40)),
            draw(st.integers(1, 4)),
        ),
        "kernel_sizes": draw(
            st.one_of(
                st.integers(1, 5),
                st.lists(st.integers(1, 5), min_size=depth, max_size=depth),
            )
        ),
        "strides": draw(
            st.one_of(
                st.integers(1, 3), st.lists(st.integers(1, 3), min_size=depth, max_size=depth)
            )
        ),
        "normalization": draw(st.sampled_from([None, "batch", "shared"])),
        "decoder_style": draw(st.sampled_from(["transpose", "upsampling"])),
        "encoder_style": draw(st.sampled_from(["strided", "pooling"])),
    }


def _expected_shapes(arguments):
    height, width, channels = arguments["input_shape"]
    strides = arguments["strides"]
    depth = len(arguments["filters"])
    strides = strides if isinstance(strides, list) else [strides] * depth
    shapes = [(height, width, channels)]
    for stride, filters in zip(strides, arguments["filters"]):
        height, width = math.ceil(height / stride), math.ceil(width / stride)
        shapes.append((height, width, filters))
    return shapes


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stack_arguments())
def test_every_level_has_the_documented_shape(arguments):
    keras.backend.clear_session()
    stack = MirroredConvStack(**arguments)
    expected = _expected_shapes(arguments)
    assert stack.shapes == expected
    images = np.random.default_rng(0).random((2,) + tuple(arguments["input_shape"]), "float32")
    # Eager calls, not `predict`: the shapes are the same, without compiling
    # a predict function for every level of every example.
    for level in range(1, stack.depth + 1):
        code = stack.encoder_prefix(level)(images)
        assert tuple(code.shape[1:]) == expected[level]
        rebuilt = stack.decoder_levels[level - 1](code)
        assert tuple(rebuilt.shape[1:]) == expected[level - 1]
    output = keras.ops.convert_to_numpy(stack(images))
    assert output.shape == images.shape
    assert np.all((output >= 0) & (output <= 1))  # sigmoid output


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stack_arguments())
def test_config_round_trips(arguments):
    keras.backend.clear_session()
    stack = MirroredConvStack(**arguments)
    config = stack.get_config()
    clone = MirroredConvStack.from_config(config)
    assert clone.get_config() == config
    assert clone.shapes == stack.shapes
    assert clone.count_params() == stack.count_params()
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(stack))
    assert revived.get_config() == config


def test_paper_preset():
    stack = MirroredConvStack.paper()
    assert stack.depth == 7
    assert stack.shapes[0] == (128, 128, 3)
    assert stack.shapes[-1] == (1, 1, 1024)
    assert stack.filters == [16, 32, 64, 128, 256, 512, 1024]
    assert stack.kernel_sizes == [(5, 5)] + [(3, 3)] * 6
    assert stack.strides == [2] * 7
    convs = {layer.name: layer for layer in stack.layers}
    assert convs["encoder_conv_1"].kernel_size == (5, 5)
    assert convs["encoder_conv_2"].kernel_size == (3, 3)
    assert convs["encoder_conv_1"].activation.__name__ == "selu"
    output = convs["decoder_conv_1"]
    assert isinstance(output, keras.layers.Conv2DTranspose)
    assert output.kernel_size == (5, 5) and output.filters == 3
    assert output.activation.__name__ == "sigmoid"
    assert convs["decoder_conv_7"].filters == 512


def test_shared_normalization_is_one_layer_per_tensor_level():
    stack = MirroredConvStack(filters=(4, 8, 16), input_shape=(16, 16, 3), normalization="shared")
    norms = [layer for layer in stack.layers if isinstance(layer, SharedBatchNorm)]
    assert sorted(n.name for n in norms) == ["shared_norm_1", "shared_norm_2", "shared_norm_3"]
    graph = keras.Model(stack.inputs, stack.outputs)  # the stack's graph, as plain Keras
    config = {layer["name"]: layer for layer in graph.get_config()["layers"]}
    sites = {
        name: [node["kwargs"].get("site") for node in config[name]["inbound_nodes"]]
        for name in ("shared_norm_1", "shared_norm_2", "shared_norm_3")
    }
    # T_1 and T_2 are rebuilt by D_2 and D_3; T_3 is never rebuilt.
    assert sites == {
        "shared_norm_1": ["encoder", "decoder"],
        "shared_norm_2": ["encoder", "decoder"],
        "shared_norm_3": ["encoder"],
    }
    norm_1 = next(n for n in norms if n.name == "shared_norm_1")
    assert norm_1 in stack.encoder_level_layers(1)
    assert norm_1 in stack.decoder_level_layers(2)
    assert norm_1 not in stack.encoder_level_layers(2)


def test_batch_normalization_is_separate_per_block():
    stack = MirroredConvStack(filters=(4, 8, 16), input_shape=(16, 16, 3), normalization="batch")
    norms = [l for l in stack.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(norms) == 5  # every encoder block, every decoder block but the output
    assert not any(isinstance(n, SharedBatchNorm) for n in norms)


def test_pooling_encoder_and_upsampling_decoder_layers():
    stack = MirroredConvStack(
        filters=(4, 8), input_shape=(9, 9, 1), encoder_style="pooling", decoder_style="upsampling"
    )
    kinds = [type(l).__name__ for l in stack.layers]
    assert kinds.count("MaxPooling2D") == 2 and kinds.count("UpSampling2D") == 2
    assert "Conv2DTranspose" not in kinds
    assert stack.output.shape[1:] == (9, 9, 1)


def test_numpy_strings_and_integers_are_accepted_and_saved_as_python_values():
    stack = MirroredConvStack(
        base_filters=np.int64(3),
        depth=np.int64(2),
        input_shape=(8, 8, 1),
        normalization=np.str_("batch"),
    )
    config = stack.get_config()
    assert stack.filters == [3, 6]
    assert config["normalization"] == "batch" and type(config["normalization"]) is str


def test_base_filters_and_depth():
    stack = MirroredConvStack(base_filters=3, depth=3, input_shape=(8, 8, 1))
    assert stack.filters == [3, 6, 12]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"filters": (16, 0)}, r"filters=\(16, 0\)"),
        ({"filters": ()}, r"filters=\(\)"),
        ({"filters": (8,), "normalization": "layer"}, "normalization='layer'"),
        ({"filters": (8,), "decoder_style": "pixelshuffle"}, "decoder_style='pixelshuffle'"),
        ({"filters": (8,), "encoder_style": "dilated"}, "encoder_style='dilated'"),
        ({"filters": (8, 8), "kernel_sizes": (3, 3, 3)}, r"kernel_sizes=\(3, 3, 3\)"),
        ({"filters": (8,), "kernel_sizes": 0}, "kernel_sizes=0"),
        ({"filters": (8,), "strides": -2}, "strides=-2"),
        ({"filters": (8,), "decoder_statistics": "mixed"}, "decoder_statistics='mixed'"),
        ({"filters": None, "base_filters": 16}, "depth=None"),
        ({"filters": None, "base_filters": 0, "depth": 2}, "base_filters=0"),
        ({"filters": (8,), "depth": 2}, "depth=2"),
        ({"filters": (8,), "input_shape": None}, "input_shape=None"),
        ({"filters": (8,), "input_shape": (32, 32)}, r"input_shape=\(32, 32\)"),
        ({"filters": (8,), "input_shape": (32, 0, 3)}, r"input_shape=\(32, 0, 3\)"),
    ],
)
def test_invalid_arguments(arguments, message):
    arguments = {"input_shape": (16, 16, 3), **arguments}
    with pytest.raises(ValueError, match=message):
        MirroredConvStack(**arguments)
