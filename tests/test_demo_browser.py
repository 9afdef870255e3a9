"""demo/app.py in a real headless Chromium: upload an image, two streamed turns, clear, a bad image.

Needs Playwright's Python package and a system Chromium (Debian: `apt-get install -y chromium`);
the browser is never downloaded. Skips, saying which is missing, when either is absent.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']


def chromium_path():
    explicit = os.environ.get('VLMTUNE_CHROMIUM')
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for_server(proc, url, log_path, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f'demo exited with {proc.returncode}:\n{Path(log_path).read_text()[-3000:]}')
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f'demo did not answer at {url} in {timeout}s:\n{Path(log_path).read_text()[-3000:]}')


@pytest.fixture
def browser_tools():
    """(playwright.sync_api, Chromium path); checked before the server starts."""
    from playwright import sync_api  # installed with the project's dev extra
    executable = chromium_path()
    assert executable, 'no Chromium executable: `make setup` installs it (apt-get install -y chromium), or set VLMTUNE_CHROMIUM'
    return sync_api, executable


@pytest.fixture
def demo_server(browser_tools, tiny_folder, tmp_path):
    from vlmtune.bench.samples import write_sample
    port = free_port()
    log_path = tmp_path / 'demo.log'
    examples = write_sample('conversations', tmp_path / 'eval')   # 4 colour swatches and their question
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED='False', PYTHONUNBUFFERED='1')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, str(REPO / 'demo' / 'app.py'), str(tiny_folder()),
                                 '--port', str(port), '--backend', 'torch', '--examples', str(examples)],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f'http://127.0.0.1:{port}/'
    try:
        wait_for_server(proc, url, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_demo_in_browser(browser_tools, demo_server, tiny_folder, tmp_path):
    sync_api, executable = browser_tools
    expect = sync_api.expect
    good, bad = tmp_path / 'red.png', tmp_path / 'broken.png'
    Image.new('RGB', (96, 64), (200, 40, 40)).save(good)
    bad.write_bytes(good.read_bytes()[:60])  # a PNG header and nothing else
    screenshot = tmp_path / 'demo_screenshot.png'

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=['--no-sandbox'])
        try:
            page = browser.new_page(viewport={'width': 1280, 'height': 900})
            page.set_default_timeout(30_000)
            page.goto(demo_server)
            bot = page.locator('#chatbot [data-testid="bot"]')
            status = page.locator('#status')
            question = page.locator('#question textarea')

            expect(page.locator('#backend-line')).to_contain_text('backend: torch (CPU)')
            expect(page.locator('#backend-line')).to_contain_text(str(tiny_folder()))

            page.get_by_text('Generation settings').click()
            max_new = page.locator('#max-new input[type="number"]')
            max_new.fill('16')
            max_new.press('Enter')
            page.locator('#image-input input[type="file"]').set_input_files(str(good))
            expect(status).to_contain_text('Image attached')

            def ask(text, n_answers):
                question.fill(text)
                page.locator('#send').click()
                expect(bot).to_have_count(n_answers)
                expect(status).not_to_contain_text('Generating', timeout=60_000)
                assert 'Error' not in status.inner_text()

            ask('What is in the image?', 1)
            ask('What color is it?', 2)
            answers = [t.strip() for t in bot.all_inner_texts()]
            assert len(answers) == 2 and all(answers), answers
            assert page.locator('#chatbot img').count() >= 1  # the uploaded image is shown in the chat
            page.screenshot(path=str(screenshot), full_page=True)

            page.locator('#clear').click()
            expect(page.locator('#chatbot [data-testid="user"]')).to_have_count(0)
            expect(bot).to_have_count(0)

            # The eval-set gallery: one click puts its image and question in place, and it answers.
            gallery = page.locator('#examples')
            expect(gallery).to_contain_text('What colour is the image?')
            expect(gallery.locator('img')).to_have_count(4)
            gallery.locator('img').first.click()
            expect(question).to_have_value('What colour is the image?')
            expect(page.locator('#image-input img')).to_have_count(1)
            page.locator('#send').click()
            expect(bot).to_have_count(1)
            expect(status).not_to_contain_text('Generating', timeout=60_000)
            assert page.locator('#chatbot img').count() >= 1   # the example's image went with the question
            page.locator('#prompts').get_by_text('Describe the image.').click()
            expect(question).to_have_value('Describe the image.')
            page.locator('#clear').click()
            expect(bot).to_have_count(0)

            page.locator('#image-input input[type="file"]').set_input_files(str(bad))
            expect(status).to_contain_text('Image attached')
            question.fill('And now?')
            page.locator('#send').click()
            expect(status).to_contain_text('cannot read image')
            expect(bot).to_have_count(0)
        finally:
            browser.close()

    print(f'\ndemo screenshot: {screenshot}')
    if os.environ.get('VLMTUNE_ARTIFACTS'):
        out = Path(os.environ['VLMTUNE_ARTIFACTS'])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, out / screenshot.name)
        print(f'copied to {out / screenshot.name}')
