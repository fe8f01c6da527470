"""The app's single-image task tabs, called as a script would (gradio_client), on a tiny saved model (2 scales).

paint, edit, inpaint, outpaint, super_resolution and animate must return results of the expected size (a GIF with
the requested frames for animate), Generate's tileable option must reach the pipeline, and bad inputs must come back
as one readable line naming the input (the app's checks, Gradio's bounds, or the pipeline's own ValueError).
"""

from __future__ import annotations

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
from conftest import synthetic_image, tiny_pipeline  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

from sinddm_app import blocks, editor, models, settings  # noqa: E402
from sinddm_app.inputs import make_generator  # noqa: E402
from sinddm_app.tabs import animate, inpaint, super_resolution  # noqa: E402
from sinddm_app.tabs.generate import generate  # noqa: E402
from sinddm_pipeline import SinDDMPipeline  # noqa: E402
from sinddm_pipeline.pipeline_sinddm_paint import paint_size  # noqa: E402

settings.ALLOW_FOLDERS = True  # these tests load a tiny model from a folder (python app.py --allow_folders)

EXACT = (False, 1, 0)  # fast sampling, number of images, seed: the controls every task tab ends with


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny model (dim 8, 96x72 training image, 2 scales), an 80x60 image with a hole mask, a black mask, a brushed
    layer, a 2:1 painting and a 40x30 image to upscale, as paths."""
    root = tmp_path_factory.mktemp("app_tasks")
    tiny_pipeline().save_pretrained(root / "model")
    synthetic_image(80, 60, seed=1).save(root / "image.png")
    mask = Image.new("L", (80, 60))
    mask.paste(255, (30, 20, 50, 40))
    mask.save(root / "mask.png")
    Image.new("L", (80, 60)).save(root / "black.png")
    layer = Image.new("RGBA", (80, 60))
    layer.paste((255, 0, 0, 255), (30, 20, 50, 40))
    layer.save(root / "layer.png")
    synthetic_image(64, 32, seed=2).save(root / "painting.png")
    synthetic_image(40, 30, seed=3).save(root / "small.png")
    names = ("model", "image.png", "mask.png", "black.png", "layer.png", "painting.png", "small.png")
    return {name: str(root / name) for name in names}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings.WORK_DIR = tmp_path_factory.mktemp("app_tasks_work")  # outputs go to pytest's tmp, not /tmp
    demo = blocks.build_demo().queue(default_concurrency_limit=2)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def sizes(gallery: list) -> list[tuple[int, int]]:
    """The sizes of a gallery output's images (each checked not blank)."""
    result = []
    for item in gallery:
        with Image.open(item["image"]) as image:
            assert np.asarray(image).std() > 0
            result.append(image.size)
    return result


def editor_value(files, brushed: bool = False) -> dict:
    """The image editor's value as a script sends it: the image, and a brushed layer or none."""
    layers = [handle_file(files["layer.png"])] if brushed else []
    return {"background": handle_file(files["image.png"]), "layers": layers, "composite": None}


def test_paint_to_image_has_the_paintings_aspect_and_the_models_pixels(client, files):
    gallery, note = client.predict(files["model"], handle_file(files["painting.png"]), 1, *EXACT, api_name="/paint")
    height, width = paint_size((64, 32), (72, 96))
    assert sizes(gallery) == [(width, height)] and note == ""


def test_edit_and_inpaint_keep_the_size_with_an_uploaded_or_a_brushed_mask(client, files):
    mask = handle_file(files["mask.png"])
    gallery, _ = client.predict(files["model"], editor_value(files), mask, 1, False, 2, 0, api_name="/edit")
    assert sizes(gallery) == [(80, 60)] * 2
    gallery, _ = client.predict(files["model"], editor_value(files, brushed=True), None, 1, *EXACT, api_name="/edit")
    assert sizes(gallery) == [(80, 60)]
    gallery, _ = client.predict(files["model"], editor_value(files, brushed=True), None, 1, *EXACT, api_name="/inpaint")
    assert sizes(gallery) == [(80, 60)]


def test_inpaint_keeps_the_pixels_away_from_the_hole(client, files):
    mask = handle_file(files["mask.png"])
    gallery, _ = client.predict(files["model"], editor_value(files), mask, 0, *EXACT, api_name="/inpaint")
    with Image.open(gallery[0]["image"]) as result, Image.open(files["image.png"]) as original:
        kept = np.asarray(result.convert("RGB"))[:8], np.asarray(original.convert("RGB"))[:8]  # far from the hole
    assert np.array_equal(*kept)


def test_outpaint_adds_the_margins_fast_or_exact(client, files):
    picture = handle_file(files["image.png"])
    gallery, _ = client.predict(files["model"], picture, 8, 0, 0, 16, *EXACT, api_name="/outpaint")
    assert sizes(gallery) == [(96, 68)]
    gallery, _ = client.predict(files["model"], picture, 0, 4, 10, 0, True, 1, 0, api_name="/outpaint")
    assert sizes(gallery) == [(90, 64)]


def test_super_resolution_multiplies_the_size_by_the_factor(client, files):
    small = handle_file(files["small.png"])
    gallery, _ = client.predict(files["model"], small, 2.0, False, *EXACT, api_name="/super_resolution")
    assert sizes(gallery) == [(80, 60)]
    gallery, _ = client.predict(files["model"], small, 1.5, True, *EXACT, api_name="/super_resolution")
    assert sizes(gallery) == [(60, 45)]


def test_animate_returns_a_looping_gif_with_the_requested_frames(client, files):
    shown, download = client.predict(files["model"], 3, 0.5, 5, False, False, 0, api_name="/animate")
    with Image.open(shown) as gif:
        assert (gif.format, gif.n_frames, gif.size, gif.info["loop"]) == ("GIF", 3, (96, 72), 0)
        assert gif.info["duration"] == 200  # 5 fps
    assert download.endswith(".gif")


def test_generate_tileable_reaches_the_pipeline(client, files):
    gallery, _ = client.predict(files["model"], 1, 0, 1.0, 1.0, 0, 0, False, 0, True, api_name="/generate")
    assert sizes(gallery) == [(96, 72)]
    tiled, _ = generate(files["model"], 1, 4, 1.0, 1.0, 0, 0, False, 0, True)
    plain, _ = generate(files["model"], 1, 4, 1.0, 1.0, 0, 0, False, 0)  # the old call: not tileable
    pipe = SinDDMPipeline.from_pretrained(files["model"])
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(generator=make_generator(4), tileable=True).images[0]
    assert np.array_equal(np.asarray(tiled[0][0]), np.asarray(expected))
    assert not np.array_equal(np.asarray(plain[0][0]), np.asarray(expected))


def test_an_uploaded_image_model_runs_the_tasks_fast(client, files):
    picker, _, _ = client.predict(handle_file(files["image.png"]), api_name="/use_image")
    name = picker["value"]
    small = handle_file(files["small.png"])
    gallery, _ = client.predict(name, small, 2.0, False, True, 1, 0, api_name="/super_resolution")
    assert sizes(gallery) == [(80, 60)]
    shown, _ = client.predict(name, 2, 0.5, 10, True, True, 0, api_name="/animate")
    with Image.open(shown) as gif:
        assert (gif.n_frames, gif.size) == (2, (80, 60))


# (api_name, arguments with "MODEL" for the model, the message): each names what is wrong
BAD_INPUTS = [
    ("/paint", ("MODEL", "PAINTING", 2, *EXACT), r"start_scale must be an int in \[1, 1\]"),  # the pipeline's
    ("/paint", ("MODEL", "PAINTING", 0, *EXACT), "Start scale: Value 0 is less than minimum value 1"),  # Gradio's
    ("/paint", ("MODEL", None, 1, *EXACT), "Upload The painting first"),
    ("/edit", ("MODEL", "EDITOR", "BLACK", 1, *EXACT), "mask_image: the mask is zero everywhere"),
    ("/edit", ("MODEL", "EDITOR", None, 1, *EXACT), "Brush over the edited region"),
    ("/inpaint", ("MODEL", "EDITOR", "BLACK", 0, *EXACT), "mask_image: the mask is zero everywhere"),
    ("/inpaint", ("MODEL", "EDITOR", None, 0, *EXACT), "Brush over the hole"),
    ("/inpaint", ("MODEL", "EDITOR", "MASK", 30, *EXACT), "Resample steps: Value 30 is greater than maximum value 20"),
    ("/outpaint", ("MODEL", "IMAGE", 0, 0, 0, 0, *EXACT), "Margins: give at least one of top, bottom, left, right"),
    ("/outpaint", ("MODEL", "IMAGE", -5, 0, 0, 10, *EXACT), "Top margin: Value -5 is less than minimum value 0"),
    ("/outpaint", ("MODEL", "IMAGE", 0, 0, 200, 0, *EXACT), r"left must be an int in \[0, 80\], got 200"),
    ("/super_resolution", ("MODEL", "SMALL", 5, False, *EXACT), "Upscale factor: Value 5 is greater than maximum"),
    ("/animate", ("MODEL", 0, 0.5, 10, False, False, 0), "Number of frames: Value 0 is less than minimum value 2"),
    ("/animate", ("MODEL", 4, 0.0, 10, False, False, 0), "Variation: Value 0.0 is less than minimum value 0.05"),
]


@pytest.mark.parametrize(("api_name", "arguments", "message"), BAD_INPUTS)
def test_bad_inputs_give_readable_errors_naming_the_input(client, files, api_name, arguments, message):
    values = {
        "MODEL": files["model"],
        "PAINTING": handle_file(files["painting.png"]),
        "IMAGE": handle_file(files["image.png"]),
        "SMALL": handle_file(files["small.png"]),
        "MASK": handle_file(files["mask.png"]),
        "BLACK": handle_file(files["black.png"]),
        "EDITOR": editor_value(files),
    }
    arguments = [values[value] if isinstance(value, str) and value in values else value for value in arguments]
    with pytest.raises(Exception, match=message) as error:
        client.predict(*arguments, api_name=api_name)
    assert "Traceback" not in str(error.value)


def test_the_handlers_check_their_numbers_without_gradios_bounds(files):
    """Called directly (no Gradio bounds), the handlers check their numbers, and the pipelines' ValueErrors arrive
    as gr.Error."""
    image = synthetic_image(40, 30)
    with pytest.raises(gr.Error, match="Upscale factor must be between 1.25 and 4.0, got 5"):
        super_resolution.super_resolution(files["model"], image, 5, False, *EXACT)
    with pytest.raises(gr.Error, match="Number of frames must be a whole number between 2 and 48, got 0"):
        animate.animate(files["model"], 0, 0.5, 10, False, False, 0)
    with pytest.raises(gr.Error, match=r"top must be an int >= 0 \(pixels of margin\), got -5"):
        inpaint.outpaint(files["model"], image, -5, 0, 0, 4, *EXACT)
    with pytest.raises(gr.Error, match="Resample steps must be a whole number between 0 and 20"):
        inpaint.inpaint(files["model"], image, image, 2.5, *EXACT)


def test_an_uploaded_mask_wins_over_a_brushed_one():
    brushed = Image.new("RGBA", (80, 60))
    brushed.paste((255, 0, 0, 255), (0, 0, 10, 10))
    uploaded = Image.new("L", (80, 60))
    uploaded.paste(255, (30, 20, 50, 40))
    value = {"background": synthetic_image(80, 60), "layers": [brushed], "composite": None}
    image, mask, note = editor.image_and_mask(value, uploaded, "The image", "no mask")
    assert image.size == (80, 60) and note == ""
    assert (np.asarray(mask.convert("L")) > 0).sum() == 20 * 20
    _, mask, _ = editor.image_and_mask(value, None, "The image", "no mask")
    assert (np.asarray(mask) > 0).sum() == 10 * 10
    with pytest.raises(gr.Error, match="no mask"):
        editor.image_and_mask({"background": synthetic_image(80, 60), "layers": []}, None, "The image", "no mask")


def test_fast_task_pipelines_share_the_probes_settings(files):
    from sinddm_pipeline import SinDDMInpaintPipeline

    fast = models.task_pipeline(SinDDMInpaintPipeline, files["model"], fast=True)
    exact = models.task_pipeline(SinDDMInpaintPipeline, files["model"])
    assert isinstance(fast, SinDDMInpaintPipeline) and isinstance(exact, SinDDMInpaintPipeline)
    assert fast.scheduler.config.solver_order == 2 and fast._fast_num_inference_steps
    assert exact.scheduler.config.solver_order == 1 and exact._fast_num_inference_steps is None


def test_animation_gpu_duration_grows_with_the_frames():
    assert animate.animation_gpu_seconds("model", 16) == 76
    assert animate.animation_gpu_seconds("model", 10_000) == animate.animation_gpu_seconds("model", "many") == 108


def test_the_task_tabs_offer_the_shipped_example_inputs():
    """Paint, Outpaint and Super-resolution show the example inputs of examples/app (make_examples.py draws them)."""
    for name in ("painting.png", "crop.png"):
        assert (settings.EXAMPLES_DIR / name).is_file(), name
    demo = blocks.build_demo()
    samples = " ".join(str(block.samples) for block in demo.blocks.values() if isinstance(block, gr.Dataset))
    assert samples.count("painting.png") >= 1 and samples.count("crop.png") >= 2  # Outpaint and Super-resolution
    with Image.open(settings.EXAMPLES_DIR / "crop.png") as crop:
        assert crop.size == (100, 80)


def test_the_start_scale_sliders_follow_the_chosen_model(files):
    from sinddm_app.tabs import paint

    paint_slider, edit_slider = paint.start_scale_ranges(files["model"])  # 2 scales: start scale 1 only
    assert (paint_slider.value, edit_slider.value, edit_slider.interactive) == (1, 1, False)
    paint_slider, edit_slider = paint.start_scale_ranges(settings.DEFAULT_MODEL)  # the shipped model: 5 scales
    assert (paint_slider.maximum, edit_slider.value, edit_slider.interactive) == (4, 2, True)
    assert paint.start_scale_ranges("") == (gr.skip(), gr.skip())  # no model: left as they are
