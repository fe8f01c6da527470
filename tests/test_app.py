"""The Gradio app's generate endpoint, called as a script would (gradio_client), on a tiny saved model."""

import pytest

gr = pytest.importorskip("gradio")
from gradio_client import Client  # noqa: E402
from PIL import Image  # noqa: E402

import app  # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from conftest import tiny_pipeline

    folder = tmp_path_factory.mktemp("model")
    tiny_pipeline().save_pretrained(folder)
    demo = app.build_demo().queue(default_concurrency_limit=2)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False), str(folder)
    finally:
        demo.close()


def test_generate_returns_images(client):
    api, model = client
    result = api.predict(model, 2, 5, 1.5, 1.0, api_name="/generate")
    assert len(result) == 2
    image = Image.open(result[0]["image"])
    assert image.width > image.height  # width_scale 1.5 on a 96x72 training image


def test_bad_model_gives_a_readable_error(client):
    api, _ = client
    with pytest.raises(Exception, match="Cannot load the model"):
        api.predict("/no/such/model", 1, 0, 1.0, 1.0, api_name="/generate")


def test_the_shipped_model_is_listed():
    assert app.DEFAULT_MODEL in app.shipped_models()
