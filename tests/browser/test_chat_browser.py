"""The Chat tab in a real JupyterLab (headless Chromium + Playwright): two contestants —
the tiny model, and the same model under URIAL with best-of-N sampling — stream their replies side by side, and the
URIAL reply's tokens are coloured by token-shift category against the base. Leaves
test-artifacts/chat-two-contestants.png. Reuses test_app_browser's JupyterLab fixture."""
from __future__ import annotations

import pytest
from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, lab  # noqa: F401 — the JupyterLab fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Which reply columns were seen mid-stream (before their reply was final).
WATCH_JS = """() => {
  window.__wbStreamed = new Set();
  const seen = () => document.querySelectorAll('.wb-chat-col').forEach((col, i) => {
    if (col.querySelector('.wb-chat-streaming')) window.__wbStreamed.add(i); });
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_chat_tab_streams_two_contestants_and_colours_tokens(lab):  # noqa: F811
    from playwright.sync_api import sync_playwright

    url, _ = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/lab/tree/00_quickstart.ipynb")
            page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')",
                                   timeout=60_000)
            page.evaluate("""async () => {
                const nb = window.jupyterapp.shell.currentWidget;
                await nb.context.ready;
                await nb.sessionContext.ready;
                window.jupyterapp.commands.execute('notebook:run-all-cells');
            }""")
            page.wait_for_selector("button.wb-start", state="attached", timeout=150_000)
            page.locator(".wb-app .lm-TabBar-tab", has_text="Chat").first.click()
            page.wait_for_selector(".wb-chat-contestant", timeout=30_000)

            page.locator("button.wb-chat-add").click()
            page.wait_for_function("() => document.querySelectorAll('.wb-chat-contestant').length == 2",
                                   timeout=30_000)
            second = page.locator(".wb-chat-contestant").nth(1).locator(".wb-chat-model input")
            second.fill("urial:tiny-llama")
            second.press("Enter")
            # sampled (best-of-N), so its tokens depart from the base's greedy choices
            page.locator(".wb-chat-contestant").nth(1).locator(".wb-chat-strategy select").select_option("best_of_n")
            page.locator(".wb-chat-input textarea").fill("Why is the sky blue?")
            page.wait_for_timeout(500)   # let the widget values reach the kernel
            page.evaluate(WATCH_JS)
            page.locator("button.wb-chat-send").click()

            page.wait_for_function("() => document.querySelectorAll('.wb-chat-coloured').length == 2",
                                   timeout=180_000)
            page.locator(".wb-chat").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "chat-two-contestants.png"), full_page=False)
            headers = page.locator(".wb-chat-col").all_inner_texts()
            assert len(headers) == 2 and "urial:tiny-llama · best_of_n" in headers[1], headers
            assert sorted(page.evaluate("() => [...window.__wbStreamed]")) == [0, 1]   # both streamed
            tuned = page.locator(".wb-chat-col").nth(1)
            assert tuned.locator(".tds-shifted, .tds-marginal").count() > 0      # URIAL's tokens coloured
            assert "mean KL to base" in tuned.locator(".wb-chat-stats").inner_text()
            assert "turn 1 done" in page.locator(".wb-chat-status").inner_text()
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "chat-failure.png"))
            raise
        finally:
            browser.close()
