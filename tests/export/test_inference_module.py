"""Interface 1: each task's inference module computes exactly what the task's own predict path computes."""

from __future__ import annotations

import pytest
import torch

from cnnlab import tasks
from cnnlab.data.preprocess import Preprocess
from cnnlab.tasks.detection.postprocess import decode_grid, decode_yolo_v1
from cnnlab.tasks.text.encoder import TextEncoder
from cnnlab.tasks.text.tokenize import Tokenizer
from cnnlab.tasks.text.vocab import Vocabulary

from .models import SMALL_BACKBONE


def _images(shape, n: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _preprocess(channels: int) -> Preprocess:
    return Preprocess([0.4] * channels, [0.25] * channels)


@pytest.mark.parametrize(
    ("model", "shape", "mode"),
    [("lenet5_modern", [1, 28, 28], "multiclass"), ("lenet5_modern", [1, 28, 28], "binary"),
     ("cnn3d_small", [1, 16, 16, 16], "multiclass")],
)  # fmt: skip
def test_classification_module_gives_the_logits_predict_uses(model, shape, mode) -> None:
    task = tasks.create("classification")
    classes = 2 if mode == "binary" else 3
    meta = {"num_classes": classes, "classes": list("abc")[:classes], "input_shape": shape, "label_mode": mode}
    net, preprocess = task.build_model({"name": model}, meta).eval(), _preprocess(shape[0])
    module = task.inference_module(net, preprocess, meta)
    images = _images(shape)
    with torch.inference_mode():
        assert torch.equal(module(images), net(preprocess(images)))
    assert task.export_inputs(meta) == [{"name": "images", "dtype": "uint8", "shape": ["batch", *shape]}]
    assert task.export_outputs == ("logits",)


@pytest.mark.parametrize("name", ["yolo_grid", "yolo_v1"])
def test_detection_module_gives_the_decoded_boxes_and_scores(name) -> None:
    task = tasks.create("detection")
    meta = {"num_classes": 4, "classes": list("abcd"), "input_shape": [3, 64, 64], "image_size": 64}
    net = task.build_model({"name": name, "options": {"backbone": SMALL_BACKBONE}}, meta).eval()
    preprocess = _preprocess(3)
    module = task.inference_module(net, preprocess, meta)
    images = _images([3, 64, 64])
    with torch.inference_mode():
        boxes, scores = module(images)
        out = net(preprocess(images))
        if name == "yolo_v1":
            expected = decode_yolo_v1(out, 64, net.boxes)
        else:
            expected = decode_grid(out, net.anchors, 64)
        predicted = task.predict(net, preprocess, images)
    assert torch.equal(boxes, expected[0]) and torch.equal(scores, expected[1])
    assert boxes.shape[:2] == scores.shape[:2] and boxes.shape[2] == 4 and scores.shape[2] == 4
    from cnnlab.tasks.detection.postprocess import select

    for mine, theirs in zip(select(boxes, scores, 64, task.selection()), predicted):
        assert all(torch.equal(mine[key], theirs[key]) for key in ("boxes", "scores", "labels"))
    assert task.export_outputs == ("boxes", "scores")


def test_faces_module_gives_the_embedding_the_gallery_compares() -> None:
    task = tasks.create("faces")
    meta = {"num_classes": 4, "classes": list("abcd"), "input_shape": [1, 32, 32], "image_size": 32}
    net = task.build_model({"name": "face_embedder", "options": {"backbone": "lenet5_modern", "pool": "avg"}}, meta)
    preprocess = _preprocess(1)
    module = task.inference_module(net.eval(), preprocess, meta)
    crops = _images([1, 32, 32], n=5)
    with torch.inference_mode():
        embedding = module(crops)
    assert torch.equal(embedding, task.embed(net, preprocess, crops))
    assert torch.allclose(embedding.norm(dim=1), torch.ones(5), atol=1e-5)
    assert task.export_outputs == ("embedding",)


def _encoder(max_length: int, tokenizer: str = "whitespace") -> TextEncoder:
    vocabulary = Vocabulary.build([["good", "bad", "film", "plot"]], min_freq=1)
    return TextEncoder(Tokenizer(tokenizer), vocabulary, max_length)


@pytest.mark.parametrize(("name", "length"), [("kim_cnn", "length"), ("char_cnn", 300)])
def test_text_module_gives_the_logits_predict_uses(name, length) -> None:
    options = {"tokenizer": "chars"} if name == "char_cnn" else {"tokenizer": "whitespace"}
    task = tasks.create("text", options)
    encoder = _encoder(300 if name == "char_cnn" else 12, options["tokenizer"])
    meta = {"num_classes": 3, "classes": list("abc"), "input_shape": [encoder.max_length],
            "vocab_size": len(encoder.vocabulary), "model": {"name": name}}  # fmt: skip
    spec = {"name": name, "options": {"embedding_dim": 8, "filters": 4}} if name == "kim_cnn" else {"name": name}
    meta["model"] = spec
    net = task.build_model(spec, meta).eval()
    module = task.inference_module(net, encoder, meta)
    texts = ["good film", "bad plot bad film", "plot"]
    with torch.inference_mode():
        logits = module(encoder.encode(texts))
    probabilities = torch.softmax(logits, dim=1)
    values, indices = probabilities.topk(3, dim=1)
    assert task.predict(net, encoder, texts, top_k=3) == (indices.tolist(), values.tolist())
    assert task.export_inputs(meta) == [{"name": "tokens", "dtype": "int64", "shape": ["batch", length]}]
    assert tasks.create("text", options).export_inputs(meta)[0]["shape"][1] == length  # without build_model
