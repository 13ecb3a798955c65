"""The embedded mailbox's page under its content security policy: the list, a message and its HTML view with
its inline images all show, and nothing is refused."""

from __future__ import annotations

from pathlib import Path

from boxoffice.adapters.smtp import SmtpSender
from tests.integration.test_mailbox import ticket_email
from tests.mailboxes import running_mailbox


async def test_the_page_shows_a_message_and_its_html_with_images_under_its_policy(browser, tmp_path: Path) -> None:
    async with running_mailbox(tmp_path) as mailbox:
        await SmtpSender(f"smtp://127.0.0.1:{mailbox.smtp_port}").send(ticket_email())
        context = await browser.new_context()
        try:
            page = await context.new_page()
            refused: list[str] = []
            page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            response = await page.goto(mailbox.web_url)
            assert response is not None and "script-src 'sha256-" in response.headers["content-security-policy"]
            await page.locator("#rows tr", has_text="Your tickets").click(timeout=10000)
            await page.locator("#detail h2", has_text="Your tickets for Test event").wait_for(timeout=10000)
            view = page.frame_locator("#detail iframe")
            first_image = view.locator("img").first
            await first_image.wait_for(timeout=10000)
            # decode() settles once the image has loaded (or failed to): it is served from the mailbox's origin.
            assert await first_image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
            assert refused == [], refused
        finally:
            await context.close()
