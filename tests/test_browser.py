"""The web app in a real browser: headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) opens
the app launched in this process on a free port with a tiny model, clicks Generate (exact, then fast) and a cached
example of the shipped model, and waits for images in the gallery. A screenshot is saved to the test's tmp folder
and, when SINDDM_SCREENSHOT_DIR is set, there too.

Skipped, with the reason, when /usr/bin/chromium, /usr/bin/chromedriver or the selenium package is missing
(CI installs them: apt-get install -y chromium chromium-driver; pip install selenium).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
    pytest.mark.skipif(
        not CHROMEDRIVER.is_file(), reason=f"{CHROMEDRIVER} is absent (apt-get install chromium-driver)"
    ),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
gr = pytest.importorskip("gradio")

from conftest import tiny_pipeline  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from sinddm_app import blocks, settings  # noqa: E402

settings.ALLOW_FOLDERS = True  # these tests load tiny models from folders (python app.py --allow_folders)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app with a tiny saved model selected, served on a free local port."""
    folder = tmp_path_factory.mktemp("browser_model")
    tiny_pipeline().save_pretrained(folder)
    demo = blocks.build_demo(default_model=str(folder)).queue(default_concurrency_limit=2)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium with a fresh profile."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver, tmp_path: Path, name: str) -> Path:
    """A PNG screenshot of the page in tmp_path, copied to $SINDDM_SCREENSHOT_DIR when set."""
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    target = os.environ.get("SINDDM_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / name)
    return path


def loaded_gallery_images(driver) -> list | bool:
    """The Generate gallery's images once they are all loaded (a natural width > 0), else False (keep waiting)."""
    images = driver.find_elements(By.CSS_SELECTOR, "#generate-gallery img")
    loaded = images and all(image.get_attribute("naturalWidth") not in (None, "0") for image in images)
    return images if loaded else False


def test_generate_in_the_browser(app_url, browser, tmp_path):
    browser.get(app_url)
    wait = WebDriverWait(browser, 60)
    button = wait.until(expected_conditions.element_to_be_clickable((By.ID, "generate-button")))
    assert "SinDDM" in browser.title
    button.click()
    images = wait.until(loaded_gallery_images)
    assert len(images) >= 2  # the default batch is 2
    assert int(images[0].get_attribute("naturalWidth")) == 96  # the tiny model's 96x72 training size
    screenshot = save_screenshot(browser, tmp_path, "sinddm_app_generate.png")
    assert screenshot.stat().st_size > 10_000


def test_fast_mode_in_the_browser(app_url, browser, tmp_path):
    browser.get(app_url)
    wait = WebDriverWait(browser, 60)
    button = wait.until(expected_conditions.element_to_be_clickable((By.ID, "generate-button")))
    browser.find_element(By.CSS_SELECTOR, "#generate-fast input[type=checkbox]").click()
    assert browser.find_element(By.CSS_SELECTOR, "#generate-fast input[type=checkbox]").is_selected()
    button.click()
    images = wait.until(loaded_gallery_images)
    assert len(images) >= 2 and int(images[0].get_attribute("naturalWidth")) == 96
    save_screenshot(browser, tmp_path, "sinddm_app_generate_fast.png")


def test_a_cached_example_in_the_browser(app_url, browser, tmp_path):
    cache = Path(os.environ["GRADIO_EXAMPLES_CACHE"])  # the app keeps it in its own folder, not the checkout
    assert cache.is_relative_to(settings.WORK_DIR) or cache.parent.name.startswith("sinddm_app_")
    browser.get(app_url)
    wait = WebDriverWait(browser, 120)
    rows = wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#generate-examples tbody tr"))
    rows[1].click()  # the shipped model, fast, 2 images of exactly 320x160
    images = wait.until(loaded_gallery_images)
    assert len(images) == 2 and int(images[0].get_attribute("naturalWidth")) == 320
    assert any(path.is_file() for path in cache.rglob("*"))  # lazily cached on this first click
    save_screenshot(browser, tmp_path, "sinddm_app_cached_example.png")
