"""The Gradio app's endpoints, called as a script would (gradio_client), on tiny saved models.

One app is launched for the module on a free local port; every task's endpoint (generate, text_edit with a tiny
random CLIP folder, harmonize, style_transfer, roi_generate, train) must return valid images, two clients at once
must both get results, and bad inputs must come back as readable messages (gr.Error), not tracebacks.
"""

from __future__ import annotations

import json
import threading
import urllib.request
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
from conftest import (  # noqa: E402
    png_header_only,
    save_tiny_clip,
    synthetic_image,
    tiny_pipeline,
)
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

import app  # noqa: E402
from sinddm_app import blocks, editor, inputs, models, settings, widgets  # noqa: E402
from sinddm_app.tabs import text_edit  # noqa: E402
from sinddm_app.tabs import train as train_tab  # noqa: E402
from sinddm_app.tabs.generate import generate  # noqa: E402
from sinddm_pipeline import SinDDMPipeline  # noqa: E402

settings.ALLOW_FOLDERS = True  # these tests load tiny models from folders (python app.py --allow_folders)

# generate(model, num_images, seed, width_scale, height_scale, width, height, fast, fast_steps)
FAST = (True, 3)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny model (dim 8, 96x72 training image), a tiny CLIP folder and a few input images, as paths."""
    root = tmp_path_factory.mktemp("app")
    tiny_pipeline().save_pretrained(root / "model")
    save_tiny_clip(root / "clip")
    synthetic_image(80, 60, seed=1).save(root / "content.png")
    mask = Image.new("L", (80, 60))
    mask.paste(255, (30, 20, 50, 40))
    mask.save(root / "mask.png")
    Image.new("RGB", (5000, 4000)).save(root / "huge.png")
    (root / "notes.txt").write_text("not an image")
    return {name: str(root / name) for name in ("model", "clip", "content.png", "mask.png", "huge.png", "notes.txt")}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings.WORK_DIR = tmp_path_factory.mktemp("app_work")  # zips and trained models go to pytest's tmp, not /tmp
    demo = blocks.build_demo().queue(default_concurrency_limit=2)
    demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True, mcp_server=settings.MCP_SERVER
    )
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def gallery_images(result: list) -> list[Image.Image]:
    """The PIL images of a gallery output."""
    images = [Image.open(item["image"]) for item in result]
    for image in images:
        image.load()
        assert np.asarray(image).std() > 0  # not blank
    return images


def test_generate_returns_images_and_a_zip(client, files):
    gallery, download = client.predict(files["model"], 2, 5, 1.5, 1.0, 0, 0, *FAST, api_name="/generate")
    images = gallery_images(gallery)
    assert len(images) == 2
    assert images[0].width > images[0].height  # width_scale 1.5 on a 96x72 training image
    assert download.endswith(".zip")


def test_every_task_is_an_mcp_tool(client):
    if not settings.MCP_SERVER:
        pytest.skip("Gradio's MCP extra is not installed (pip install 'gradio[mcp]', as requirements.txt does)")
    with urllib.request.urlopen(client.src.rstrip("/") + "/gradio_api/mcp/schema") as response:
        tools = {tool["name"] for tool in json.load(response)}
    assert {"use_image", "generate", "text_edit", "harmonize", "style_transfer", "roi_generate", "train"} <= tools
    assert {"paint", "edit", "inpaint", "outpaint", "super_resolution", "animate"} <= tools


def test_generate_with_an_exact_size(client, files):
    gallery, _ = client.predict(files["model"], 1, 0, 1.0, 1.0, 120, 64, *FAST, api_name="/generate")
    assert gallery_images(gallery)[0].size == (120, 64)


def test_text_edit_with_a_local_clip_folder(client, files):
    images, masks = client.predict(
        files["model"], files["clip"], "fire", "content", 0.5, 0.5, None, None, None, None, 1, 0, 1,
        api_name="/text_edit",
    )  # fmt: skip
    assert gallery_images(images)[0].size == (96, 72)
    assert len(masks) == 1


def test_text_edit_roi_mode(client, files):
    images, _ = client.predict(
        files["model"], files["clip"], "fire", "roi", 0.1, 0.5, 10, 20, 16, 16, 1, 0, 1, api_name="/text_edit"
    )
    assert gallery_images(images)[0].size == (96, 72)


def test_harmonize_with_an_uploaded_mask(client, files):
    composite = {"background": handle_file(files["content.png"]), "layers": [], "composite": None}
    gallery, note = client.predict(
        files["model"], composite, handle_file(files["mask.png"]), 5, False, 1, 0, api_name="/harmonize"
    )
    assert gallery_images(gallery)[0].size == (80, 60)
    assert note == ""


def test_harmonize_with_a_brushed_mask():
    """The editor's painted layer (alpha > 0) is the mask (checked on the function, as the browser sends it)."""
    layer = Image.new("RGBA", (80, 60))
    layer.paste((255, 0, 0, 255), (30, 20, 50, 40))
    value = {"background": synthetic_image(80, 60), "layers": [layer], "composite": None}
    background, mask = editor.editor_parts(value)
    assert np.asarray(mask).sum() == 255 * 20 * 20
    assert background.size == (80, 60)


def test_style_transfer(client, files):
    gallery, _ = client.predict(
        files["model"], handle_file(files["content.png"]), 5, True, 2, 0, api_name="/style_transfer"
    )
    assert [image.size for image in gallery_images(gallery)] == [(80, 60)] * 2


def test_roi_generate(client, files):
    gallery, outlined = client.predict(
        files["model"], 10, 10, 20, 20, "5, 5, 20, 20; 40, 60, 20, 20", 1.0, 1.0, 1, 0, api_name="/roi_generate"
    )
    assert len(gallery_images(gallery)) == 2  # the image and the image with its target boxes outlined
    assert Image.open(outlined).size == (96, 72)


def test_train_then_generate_from_the_new_model(client, files):
    samples, model_zip, curve, status, picker = client.predict(
        handle_file(files["content.png"]), 5, 8, 2, 0, api_name="/train"
    )
    assert len(gallery_images(samples)) == 4
    assert model_zip.endswith(".zip")
    assert Image.open(curve).width > 0
    assert "Trained 5 steps" in status
    name = picker["value"]  # the model picker's update: the new model, selected
    assert name.startswith("trained/") and any(name in choice for choice in picker["choices"])
    gallery, _ = client.predict(name, 1, 0, 1.0, 1.0, 0, 0, *FAST, api_name="/generate")
    assert gallery_images(gallery)[0].size == (80, 60)
    with pytest.raises(Exception, match="Give a Hugging Face token"):
        client.predict(name, "user/name", "", False, api_name="/push_to_hub")


def test_two_clients_at_once(client, files):
    results: dict[int, list] = {}

    def call(index: int) -> None:
        other = Client(client.src, verbose=False)
        results[index] = other.predict(files["model"], 1, index, 1.0, 1.0, 0, 0, *FAST, api_name="/generate")[0]

    threads = [threading.Thread(target=call, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [0, 1]
    assert all(len(gallery_images(result)) == 1 for result in results.values())


# Sliders and number boxes with bounds are checked by Gradio itself ("Value 99 is greater than maximum value 8."),
# the rest by the app; both arrive as one readable line.
BAD_GENERATE = [
    (("/no/such/model", 1, 0, 1.0, 1.0, 0, 0, *FAST), "Cannot load the model"),
    ((None, 1, 0, 1.0, 1.0, 0, 0, *FAST), "Choose a model"),
    (("MODEL", 99, 0, 1.0, 1.0, 0, 0, *FAST), "Value 99 is greater than maximum value 8"),
    (("MODEL", 1, -3, 1.0, 1.0, 0, 0, *FAST), "Value -3 is less than minimum value 0"),
    (("MODEL", 1, 0, 1.0, 1.0, 5000, 0, *FAST), "Width must be a whole number between 0 and 1024"),
    (("MODEL", 1, 0, 1.0, 1.0, 0, 0, True, 1), "Fast sampling steps must be 0 .* or at least 2 per scale"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_GENERATE)
def test_bad_generate_inputs_give_readable_errors(client, files, arguments, message):
    arguments = tuple(files["model"] if value == "MODEL" else value for value in arguments)
    with pytest.raises(Exception, match=message) as error:
        client.predict(*arguments, api_name="/generate")
    assert "Traceback" not in str(error.value)


def test_missing_clip_gives_a_readable_error(client, files):
    with pytest.raises(Exception, match="Cannot load CLIP from '/no/clip'") as error:
        client.predict(
            files["model"], "/no/clip", "fire", "content", 0.5, 0.5, None, None, None, None, 1, 0, 1,
            api_name="/text_edit",
        )  # fmt: skip
    assert "Traceback" not in str(error.value)


def test_bad_text_edit_inputs(client, files):
    base = [files["model"], files["clip"], "fire", "roi", 0.1, 0.5, None, None, None, None, 1, 0, 1]
    with pytest.raises(Exception, match="ROI box: give all four numbers"):
        client.predict(*base, api_name="/text_edit")
    base[6:10] = [60, 80, 40, 40]  # outside the 72 x 96 training image
    with pytest.raises(Exception, match="roi_box"):
        client.predict(*base, api_name="/text_edit")
    base[2] = "  "
    with pytest.raises(Exception, match="Write a prompt"):
        client.predict(*base, api_name="/text_edit")


def test_bad_image_inputs(client, files):
    empty = {"background": None, "layers": [], "composite": None}
    with pytest.raises(Exception, match="Upload The composite image first"):
        client.predict(files["model"], empty, None, 5, False, 1, 0, api_name="/harmonize")
    composite = {"background": handle_file(files["content.png"]), "layers": [], "composite": None}
    with pytest.raises(Exception, match="Brush over the pasted object"):
        client.predict(files["model"], composite, None, 5, False, 1, 0, api_name="/harmonize")
    with pytest.raises(Exception, match="Upload The content image first"):
        client.predict(files["model"], None, 5, True, 1, 0, api_name="/style_transfer")
    with pytest.raises(Exception, match="too large"):
        client.predict(files["model"], handle_file(files["huge.png"]), 5, True, 1, 0, api_name="/style_transfer")
    with pytest.raises(Exception, match="Value 500 is greater than maximum value 100"):
        client.predict(files["model"], handle_file(files["content.png"]), 500, True, 1, 0, api_name="/style_transfer")
    with pytest.raises(Exception, match="Upload The training image first"):
        client.predict(None, 5, 8, 2, 0, api_name="/train")
    with pytest.raises(Exception, match="must be even"):
        client.predict(handle_file(files["content.png"]), 5, 7, 2, 0, api_name="/train")


def test_wrong_file_type_gives_a_readable_error(client, files):
    with pytest.raises(Exception, match="not an image file") as error:
        client.predict(files["model"], handle_file(files["notes.txt"]), 5, True, 1, 0, api_name="/style_transfer")
    assert "Traceback" not in str(error.value)


def test_bad_roi_boxes(client, files):
    with pytest.raises(Exception, match="is not four numbers"):
        client.predict(files["model"], 10, 10, 20, 20, "5, 5, 20", 1.0, 1.0, 1, 0, api_name="/roi_generate")
    with pytest.raises(Exception, match="Source box: give all four numbers"):
        client.predict(files["model"], None, 10, 20, 20, "5, 5, 20, 20", 1.0, 1.0, 1, 0, api_name="/roi_generate")


def test_infinite_or_endless_boxes_are_refused_with_a_message():
    with pytest.raises(gr.Error, match="must be finite pixel counts"):
        inputs.parse_boxes("5, 5, inf, 20")
    with pytest.raises(gr.Error, match="must be finite pixel counts"):
        inputs.parse_box([float("nan"), 0, 10, 10], "Source box")
    with pytest.raises(gr.Error, match="at most 64 boxes"):
        inputs.parse_boxes("1, 1, 5, 5;" * 10**5)
    assert inputs.parse_boxes("5, 5, 20.7, 20") == [(5, 5, 20, 20)]


def test_out_of_range_values_are_refused_by_the_app_too():
    """Called directly (no Gradio bounds), the task functions check their numbers themselves."""
    with pytest.raises(gr.Error, match="Number of images must be a whole number between 1 and 8"):
        generate(settings.DEFAULT_MODEL, 99, 0, 1.0, 1.0)
    with pytest.raises(gr.Error, match="Seed must be a whole number"):
        generate(settings.DEFAULT_MODEL, 1, -3, 1.0, 1.0)


def test_large_uploads_are_resized_with_a_note():
    image, note = inputs.open_image(Image.new("RGB", (400, 300), "red"), "The content image")
    assert image.width * image.height <= 50_000
    assert "resized from 400x300" in note


def test_push_to_hub_needs_a_trained_model():
    with pytest.raises(gr.Error, match="Train a model first"):
        train_tab.push_to_hub(settings.DEFAULT_MODEL, "user/name", "token", False)


def test_the_shipped_model_is_listed():
    assert settings.DEFAULT_MODEL in models.shipped_models()


def test_two_clicks_on_the_image_give_a_box():
    """The Text edit and ROI tabs fill the box numbers from two clicks (select events) on the training image."""
    first, second = SimpleNamespace(index=[40, 10]), SimpleNamespace(index=[20, 30])
    corner, *unchanged = widgets.click_box(None, None, first)
    assert corner == (10, 40)
    assert all(isinstance(value, dict) for value in unchanged)  # gr.update(): numbers kept
    assert widgets.click_box(None, corner, second) == (None, 10, 20, 21, 21)  # y, x, h, w


def test_mode_defaults_follow_the_pipeline():
    strength, fill = text_edit.mode_defaults("style")
    assert (strength["value"], fill["value"]) == (0.3, 1.0)
    assert text_edit.mode_defaults("roi")[1]["interactive"] is False


def test_push_uploads_the_trained_folder_through_the_hub_helper(monkeypatch, tmp_path):
    import sinddm_pipeline.hub

    calls = []
    monkeypatch.setattr(sinddm_pipeline.hub, "push_to_hub", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setitem(models._trained, "trained/mine", str(tmp_path))
    message = train_tab.push_to_hub("trained/mine", " me/mine ", " hf_abc ", True)
    assert message == "Pushed to https://huggingface.co/me/mine"
    ((args, kwargs),) = calls
    assert args == (str(tmp_path), "me/mine") and kwargs["token"] == "hf_abc" and kwargs["private"] is True


def test_bf16_mode_loads_a_half_precision_channels_last_denoiser_close_to_exact(files, monkeypatch):
    import torch

    monkeypatch.setattr(models, "_pipelines", {})
    exact = models.request_pipeline(SinDDMPipeline, files["model"])
    monkeypatch.setattr(models, "_pipelines", {})
    monkeypatch.setattr(settings, "BF16", True)
    fast = models.request_pipeline(SinDDMPipeline, files["model"])
    assert fast.denoiser.dtype == torch.bfloat16 and exact.denoiser.dtype == torch.float32
    conv = fast.denoiser.blocks[1].conv1.weight  # 3x3: the layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = [
        pipe(batch_size=1, generator=torch.Generator().manual_seed(0), output_type="np").images
        for pipe in (exact, fast)
    ]
    assert images[1].dtype == images[0].dtype and images[1].shape == images[0].shape
    assert 0 < np.abs(images[1] - images[0]).max() < 0.1  # bf16 noise estimates, fp32 samples


def test_bf16_and_allow_folders_flags_of_the_launcher(monkeypatch):
    launched = []
    monkeypatch.setattr(settings, "BF16", False)
    monkeypatch.setattr(settings, "ALLOW_FOLDERS", False)

    def launch(**kwargs):
        launched.append((settings.BF16, settings.ALLOW_FOLDERS))

    monkeypatch.setattr(blocks, "build_demo", lambda: SimpleNamespace(queue=lambda **_: SimpleNamespace(launch=launch)))
    app.main([])
    app.main(["--allow_folders"])
    app.main(["--bf16"])
    assert launched == [(False, False), (False, True), (True, True)]


def test_dtype_flag_of_the_launcher_and_its_deprecated_bf16_spelling(monkeypatch):
    monkeypatch.setattr(settings, "BF16", False)
    monkeypatch.setattr(settings, "ALLOW_FOLDERS", settings.ALLOW_FOLDERS)
    monkeypatch.setattr(models, "shipped_models", lambda: [])  # no bf16 probe at launch
    launch = SimpleNamespace(launch=lambda **_: None)
    monkeypatch.setattr(blocks, "build_demo", lambda: SimpleNamespace(queue=lambda **_: launch))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spelling does not warn
        app.main(["--dtype", "bf16"])
        assert settings.BF16
        app.main(["--dtype", "fp32"])
        assert not settings.BF16
    with pytest.warns(FutureWarning, match="--bf16 is deprecated and will be removed: use --dtype bf16"):
        app.main(["--bf16"])
    assert settings.BF16


def test_fast_generation_takes_the_probes_settings_strided_with_the_second_order_solver(files):
    import torch

    gallery, _ = generate(files["model"], 1, 3, 1.0, 1.0, 0, 0, True, 3)
    pipe = SinDDMPipeline.from_pretrained(files["model"])
    pipe.set_progress_bar_config(disable=True)
    choice = pipe.enable_fast_sampling()  # the same probe (cached per process): the same settings
    assert pipe.scheduler.config.solver_order == 2
    expected = pipe(generator=inputs.make_generator(3), num_inference_steps=3).images[0]
    assert np.array_equal(np.asarray(gallery[0][0]), np.asarray(expected))
    reference = SinDDMPipeline.from_pretrained(files["model"])
    reference.set_progress_bar_config(disable=True)
    strided_first_order = reference(generator=inputs.make_generator(3), num_inference_steps=3).images[0]
    assert not np.array_equal(np.asarray(strided_first_order), np.asarray(expected))
    measured, _ = generate(files["model"], 1, 3, 1.0, 1.0, 0, 0, True, 0)  # 0: the measured fast steps
    default = pipe(generator=inputs.make_generator(3), num_inference_steps=choice.num_inference_steps).images[0]
    assert np.array_equal(np.asarray(measured[0][0]), np.asarray(default))
    first_order = models.request_pipeline(SinDDMPipeline, files["model"])
    assert first_order.scheduler.config.solver_order == 1 and first_order.denoiser.dtype == torch.float32
    assert first_order.denoiser.conv_out.weight.is_contiguous()  # the cached pipeline is not changed
    with pytest.raises(gr.Error, match="at least 2 per scale"):
        generate(files["model"], 1, 3, 1.0, 1.0, 0, 0, True, 1)


def test_bf16_note_follows_the_probe(files, monkeypatch):
    from sinddm_pipeline import fast_sampling

    pipe = SinDDMPipeline.from_pretrained(files["model"])
    monkeypatch.setattr(fast_sampling, "probe_denoiser", lambda *a, **k: {"fp32": 1.0, "fp32+cl": 0.9, "bf16+cl": 9.0})
    assert "--bf16 is slower than fp32 on this machine" in models.bf16_note(pipe)
    monkeypatch.setattr(fast_sampling, "probe_denoiser", lambda *a, **k: {"fp32": 1.0, "fp32+cl": 0.9, "bf16+cl": 0.3})
    assert models.bf16_note(pipe) is None


def test_an_uploaded_image_is_a_model_for_every_tab_without_training(client, files):
    picker, status, preview = client.predict(handle_file(files["content.png"]), api_name="/use_image")
    name = picker["value"]
    assert name.startswith("image:") and "no training" in status
    assert Image.open(preview).size == (80, 60)
    again, _, _ = client.predict(handle_file(files["content.png"]), api_name="/use_image")
    assert again["value"] == name  # the same image: the same pipeline, built once
    gallery, _ = client.predict(name, 2, 0, 1.5, 1.0, 0, 0, False, 10, api_name="/generate")
    assert [image.size for image in gallery_images(gallery)] == [(120, 60)] * 2
    images, _ = client.predict(
        name, files["clip"], "fire", "content", 0.5, 0.5, None, None, None, None, 1, 0, 1, api_name="/text_edit"
    )
    assert gallery_images(images)[0].size == (80, 60)
    composite = {"background": handle_file(files["content.png"]), "layers": [], "composite": None}
    gallery, _ = client.predict(name, composite, handle_file(files["mask.png"]), 5, False, 1, 0, api_name="/harmonize")
    assert gallery_images(gallery)[0].size == (80, 60)
    gallery, _ = client.predict(name, handle_file(files["content.png"]), 5, True, 1, 0, api_name="/style_transfer")
    assert gallery_images(gallery)[0].size == (80, 60)
    gallery, _ = client.predict(name, 10, 10, 20, 20, "5, 5, 20, 20", 1.0, 1.0, 1, 0, api_name="/roi_generate")
    assert len(gallery_images(gallery)) == 2


def test_a_huge_upload_is_refused_from_its_header_before_decoding(tmp_path):
    png_header_only(tmp_path / "bomb.png", 12000, 12000)  # no pixel data: decoding would fail differently
    with pytest.raises(gr.Error, match="12000x12000 px: too large"):
        inputs.open_image(str(tmp_path / "bomb.png"), "Your image")


def test_bad_uploads_for_use_image_give_readable_errors(client, files):
    for path, message in ((files["notes.txt"], "not an image"), (files["huge.png"], "too large")):
        with pytest.raises(Exception, match=message) as error:
            client.predict(handle_file(path), api_name="/use_image")
        assert "Traceback" not in str(error.value)
    tiny = Image.new("RGB", (30, 20))
    tiny_path = files["content.png"].replace("content.png", "tiny.png")
    tiny.save(tiny_path)
    with pytest.raises(Exception, match="too small"):
        client.predict(handle_file(tiny_path), api_name="/use_image")
