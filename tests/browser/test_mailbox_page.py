"""The embedded mailbox's page under its content security policy: the list, a message and its HTML view with
its inline images all show, and nothing is refused."""

from __future__ import annotations

from pathlib import Path

from boxoffice.adapters.smtp import SmtpSender
from tests.integration.test_mailbox import plain_email, ticket_email
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


async def test_the_list_fits_its_pane_and_long_subjects_end_in_an_ellipsis(browser, tmp_path: Path) -> None:
    subject = "Your tickets for The Philharmonic Orchestra's Farewell World Tour — Grand Finale, Royal Albert Hall"
    async with running_mailbox(tmp_path) as mailbox:
        sender = SmtpSender(f"smtp://127.0.0.1:{mailbox.smtp_port}")
        await sender.send(ticket_email())
        long_one = plain_email("a.very.long.mailbox.name.for.a.buyer@tickets.example.org")
        long_one.replace_header("Subject", subject)
        await sender.send(long_one)
        page = await browser.new_page(viewport={"width": 1366, "height": 768})
        try:
            await page.goto(mailbox.web_url)
            row = page.locator("#rows tr", has_text="Philharmonic")
            await row.wait_for(timeout=10000)
            pane, table = page.locator("#list"), page.locator("#list table")
            assert await pane.evaluate("p => p.scrollWidth <= p.clientWidth"), "the list is wider than its pane"
            assert await table.evaluate("t => t.getBoundingClientRect().right <= t.parentElement.clientWidth")
            time, _, cut = (row.locator("td").nth(i) for i in range(3))
            assert await time.evaluate("td => td.scrollWidth <= td.clientWidth"), "the time is cut"
            # The subject is cut, and where it is cut the browser draws an ellipsis.
            assert await cut.evaluate("td => td.scrollWidth > td.clientWidth")
            assert await cut.evaluate("td => getComputedStyle(td).textOverflow") == "ellipsis"

            await row.click()
            await page.locator("#detail h2", has_text="Philharmonic").wait_for(timeout=10000)
            assert await pane.evaluate("p => p.scrollLeft") == 0  # no sideways scroll: the heading reads whole
            assert await pane.evaluate("p => p.scrollWidth <= p.clientWidth")
            detail = page.locator("#detail")
            assert await detail.evaluate("d => d.scrollWidth <= d.clientWidth"), "the message is wider than its pane"
        finally:
            await page.close()


async def test_on_a_phone_the_page_is_drawn_at_the_phones_width_with_the_message_below_the_list(
        browser, tmp_path: Path) -> None:
    """Found from outside: without a viewport the phone drew the page 980 px wide and shrank it unreadable."""
    async with running_mailbox(tmp_path) as mailbox:
        await SmtpSender(f"smtp://127.0.0.1:{mailbox.smtp_port}").send(ticket_email())
        page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        try:
            await page.goto(mailbox.web_url)
            await page.locator("#rows tr", has_text="Your tickets").click(timeout=10000)
            await page.locator("#detail h2", has_text="Your tickets for Test event").wait_for(timeout=10000)
            assert await page.evaluate("() => window.innerWidth") == 390
            listed, shown = await page.locator("#list").bounding_box(), await page.locator("#detail").bounding_box()
            assert listed["width"] <= 390 and shown["width"] <= 390
            assert listed["y"] + listed["height"] <= shown["y"], (listed, shown)
        finally:
            await page.close()
