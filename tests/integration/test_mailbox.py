"""The embedded mailbox: what it accepts over SMTP is listed over HTTP and kept across restarts; and the
SMTP sender's errors, against real SMTP servers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from boxoffice.adapters.embedded import free_port
from boxoffice.adapters.smtp import SmtpSender
from boxoffice.domain.tickets import TicketSeal
from boxoffice.service_layer.mail import PermanentMailError, TransientMailError
from boxoffice.service_layer.notification_ports import StoredBooking
from boxoffice.service_layer.notifications import (
    EventInfo,
    SeatLabel,
    confirmation_email,
)
from tests.mailboxes import running_mailbox

BOOKING = str(uuid.uuid4())


def ticket_email() -> EmailMessage:
    event = EventInfo("ev", "Test event", "Test hall", datetime(2030, 1, 1, tzinfo=UTC),
                      (SeatLabel("A1", "Main", "A", 1), SeatLabel("A2", "Main", "A", 2)))
    booking = StoredBooking(BOOKING, "ev", "user_1", "", "confirmed", ("A1", "A2"), Decimal("300.00"), "USD",
                            datetime(2029, 6, 1, tzinfo=UTC), "pay_1")
    return confirmation_email(booking, event, "boxoffice <tickets@boxoffice.test>", datetime.now(UTC),
                              TicketSeal(b"k" * 32))


def plain_email(to: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "a@example.com", to, "Just text"
    mail.set_content("hello")
    return mail


async def test_mail_is_listed_as_json_served_with_its_images_and_kept(tmp_path: Path) -> None:
    async with running_mailbox(tmp_path) as mailbox:
        sender = SmtpSender(f"smtp://user:s%40cret@127.0.0.1:{mailbox.smtp_port}")  # credentials are accepted
        await sender.send(ticket_email())
        await sender.send(plain_email("other@example.com"))
        async with httpx.AsyncClient(base_url=mailbox.web_url) as http:
            listed = (await http.get("/messages")).json()
            assert [m["subject"] for m in listed] == ["Just text", "Your tickets for Test event"]  # newest first
            tickets = listed[1]
            assert tickets["to"] == ["user_1@boxoffice.test"]
            assert tickets["from"] == "boxoffice <tickets@boxoffice.test>"
            assert tickets["messageId"] == f"<confirmation.{BOOKING}@boxoffice>"
            assert tickets["date"] and tickets["receivedAt"].endswith("Z")
            assert BOOKING in tickets["text"] and BOOKING in tickets["html"]
            assert [(a["filename"], a["contentType"]) for a in tickets["attachments"]] == [
                ("ticket-A1.png", "image/png"), ("ticket-A2.png", "image/png")]
            assert listed[0]["html"] is None and listed[0]["attachments"] == []

            assert [m["id"] for m in (await http.get("/messages", params={"to": "OTHER@example.com"})).json()] \
                == [listed[0]["id"]]
            assert (await http.get(f"/messages/{tickets['id']}")).json() == tickets

            raw = await http.get(f"/messages/{tickets['id']}/raw")
            assert raw.headers["content-type"] == "message/rfc822"
            assert raw.content.startswith(b"Return-Path: <tickets@boxoffice.test>")

            html = await http.get(f"/messages/{tickets['id']}/html")
            assert "cid:" not in html.text and "script-src" not in html.headers["content-security-policy"]
            image_url = f"/{mailbox.key}/messages/{tickets['id']}/parts/{tickets['attachments'][0]['contentId']}"
            assert image_url in html.text
            image = await http.get(f"http://127.0.0.1:{mailbox.http_port}{image_url}")
            assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG")

            page = await http.get("/")
            assert page.status_code == 200 and "boxoffice mailbox" in page.text
            for missing in ("/messages/00000000000000000000-00000000", "/messages/..%2Fx/raw"):
                answer = await http.get(missing)
                assert answer.status_code == 404 and answer.json()["code"] == "message_not_found"

    async with running_mailbox(tmp_path) as restarted, \
            httpx.AsyncClient(base_url=restarted.web_url) as http:
        assert (await http.get("/messages")).json() == listed


class RefuseEveryone:
    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          options: list[str]) -> str:
        return "550 5.1.1 no such mailbox"


async def test_sender_errors_say_whether_a_retry_can_help() -> None:
    with pytest.raises(TransientMailError):
        await SmtpSender(f"smtp://127.0.0.1:{free_port()}", timeout=2).send(plain_email("x@example.com"))

    port = free_port()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(RefuseEveryone()), "127.0.0.1", port)
    try:
        with pytest.raises(PermanentMailError):
            await SmtpSender(f"smtp://127.0.0.1:{port}", timeout=2).send(plain_email("x@example.com"))
    finally:
        server.close()
        await server.wait_closed()


class RefuseInTwoLines:
    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          options: list[str]) -> str:
        return "550-5.1.1 no such mailbox\r\n550 5.1.1 try another"


async def test_an_email_this_server_can_never_take_is_refused_for_good_not_retried() -> None:
    """A non-ASCII address without SMTPUTF8, or one aiosmtplib will not put on a command line: a retry
    cannot help, so the notification handler must not wait for the server to change its mind."""
    port = free_port()
    loop = asyncio.get_running_loop()
    ascii_only = await loop.create_server(lambda: SMTP(RefuseEveryone(), enable_SMTPUTF8=False), "127.0.0.1", port)
    sender = SmtpSender(f"smtp://127.0.0.1:{port}", timeout=2)
    try:
        with pytest.raises(PermanentMailError, match="SMTPUTF8"):
            await sender.send(plain_email("jürgen@exämple.de"))
        with pytest.raises(PermanentMailError, match="cannot be sent as it is"):
            await sender.send(plain_email("a\x00b@example.com"))
    finally:
        ascii_only.close()
        await ascii_only.wait_closed()

    two_lines = await loop.create_server(lambda: SMTP(RefuseInTwoLines()), "127.0.0.1", port)
    try:
        with pytest.raises(PermanentMailError) as refused:
            await SmtpSender(f"smtp://127.0.0.1:{port}", timeout=2).send(plain_email("x@example.com"))
        assert len(str(refused.value).splitlines()) == 1 and "try another" in str(refused.value)
    finally:
        two_lines.close()
        await two_lines.wait_closed()


def hostile_email() -> EmailMessage:
    """HTML whose `cid:` parts a sender chose: a page with a script, an SVG with one, and a real image."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "mallory@example.com", "victim@example.com", "Look at this"
    mail.set_content("see the HTML")
    mail.add_alternative('<p><img src="cid:pic@x"><a href="cid:page@x">open</a></p>', subtype="html")
    html = mail.get_payload()[1]
    html.add_related(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, maintype="image", subtype="png", cid="<pic@x>")
    html.add_related("<script>parent.postMessage(document.cookie, '*')</script>", subtype="html", cid="<page@x>")
    mail.add_attachment(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                        maintype="image", subtype="svg+xml", filename='a"; b=.svg')
    mail.get_payload()[-1]["Content-ID"] = "<svg@x>"
    return mail


async def test_what_a_sender_put_in_a_message_is_served_as_data_not_as_a_page_of_the_mailbox(tmp_path: Path) -> None:
    async with running_mailbox(tmp_path) as mailbox:
        await SmtpSender(f"smtp://127.0.0.1:{mailbox.smtp_port}").send(hostile_email())
        async with httpx.AsyncClient(base_url=mailbox.web_url) as http:
            [message] = (await http.get("/messages")).json()
            parts = f"/messages/{message['id']}/parts"
            for url in (f"{parts}/page@x", f"{parts}/svg@x", f"/messages/{message['id']}/raw"):
                answer = await http.get(url)
                assert answer.status_code == 200, url
                assert answer.headers["content-disposition"].startswith("attachment"), url
                policy = {d.strip() for d in answer.headers["content-security-policy"].split(";")}
                assert {"default-src 'none'", "sandbox"} <= policy, url
            svg = await http.get(f"{parts}/svg@x")
            # The sender's file name cannot add parameters to the header.
            assert svg.headers["content-disposition"] == (
                "attachment; filename=\"a___b_.svg\"; filename*=UTF-8''a%22%3B%20b%3D.svg")
            image = await http.get(f"{parts}/pic@x")
            assert image.headers["content-type"] == "image/png"
            assert image.headers["content-disposition"] == "inline"
            assert "sandbox" in image.headers["content-security-policy"]
            view = await http.get(f"/messages/{message['id']}/html")
            assert "script-src" not in view.headers["content-security-policy"]
            for url in ("/", "/messages", f"/messages/{message['id']}", f"{parts}/pic@x",
                        f"/messages/{message['id']}/html"):
                answer = await http.get(url)
                assert answer.headers["x-content-type-options"] == "nosniff", url
                assert answer.headers["referrer-policy"] == "no-referrer", url


async def test_a_message_in_a_character_set_python_does_not_know_is_listed_and_breaks_nothing(tmp_path: Path) -> None:
    # Found from outside: one such message (any local user can send one) made the list 500 for everyone, for good.
    async with running_mailbox(tmp_path) as mailbox:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=mailbox.smtp_port)
        async with smtp:
            await smtp.sendmail("a@boxoffice.test", ["fan@boxoffice.test"], (
                b"Subject: bogus\r\nTo: fan@boxoffice.test\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: text/plain; charset=bogus-xyz\r\n\r\nhi \xff there\r\n"))
        await SmtpSender(f"smtp://127.0.0.1:{mailbox.smtp_port}").send(hostile_email())
        async with httpx.AsyncClient(base_url=mailbox.web_url) as http:
            listed = await http.get("/messages")
            assert listed.status_code == 200, listed.text
            bogus = next(m for m in listed.json() if m["subject"] == "bogus")
            assert bogus["text"].rstrip() == "hi \ufffd there"
            assert len(listed.json()) == 2 and (await http.get(f"/messages/{bogus['id']}")).status_code == 200


async def test_the_mailbox_serves_nothing_without_its_key(tmp_path: Path) -> None:
    """The mail holds tickets and sign-in links; any user of the machine can reach the port."""
    async with running_mailbox(tmp_path) as mailbox:
        await SmtpSender(f"smtp://127.0.0.1:{mailbox.smtp_port}").send(ticket_email())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{mailbox.http_port}") as http:
            [message] = (await http.get(f"/{mailbox.key}/messages")).json()
            assert BOOKING in message["text"]
            wrong = ("y" if mailbox.key[0] == "x" else "x") + mailbox.key[1:]  # one character off
            for path in ("/", "/messages", f"/messages/{message['id']}", f"/messages/{message['id']}/raw",
                         f"/{wrong}/messages", f"/{mailbox.key[:-1]}/messages", f"/{mailbox.key}x/messages",
                         f"//{mailbox.key}/messages", f"/x/{mailbox.key}/messages"):
                answer = await http.get(path)
                assert answer.status_code == 404, path
                assert answer.json()["code"] == "not_found" and BOOKING not in answer.text, path
                assert answer.headers["x-content-type-options"] == "nosniff", path
            bare = await http.get(f"/{mailbox.key}")
            assert bare.status_code == 308 and bare.headers["location"] == f"/{mailbox.key}/"
            page = await http.get(f"/{mailbox.key}/")
            assert page.status_code == 200 and "boxoffice mailbox" in page.text
    assert len(mailbox.key) >= 22 and mailbox.web_url == f"http://127.0.0.1:{mailbox.http_port}/{mailbox.key}/"


class Recording:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.recipients += envelope.rcpt_tos
        return "250 OK"


@contextlib.asynccontextmanager
async def smtp_server(handler: object) -> AsyncIterator[tuple[int, list[SMTP]]]:
    """An SMTP server on a free port, handing every session to `handler`; yields its port and its sessions."""
    sessions: list[SMTP] = []

    def session() -> SMTP:
        sessions.append(SMTP(handler))
        return sessions[-1]

    port = free_port()
    server = await asyncio.get_running_loop().create_server(session, "127.0.0.1", port)
    try:
        yield port, sessions
    finally:
        server.close()
        await server.wait_closed()


async def test_one_connection_carries_the_emails_and_one_the_server_dropped_is_replaced_at_once() -> None:
    handler = Recording()
    async with smtp_server(handler) as (port, sessions):
        sender = SmtpSender(f"smtp://127.0.0.1:{port}", timeout=2)
        for n in range(3):
            await sender.send(plain_email(f"fan{n}@example.com"))
        assert (len(sessions), sender.connections) == (1, 1)
        sessions[0].transport.close()  # the server's own idle timeout
        await sender.send(plain_email("fan3@example.com"))
        assert handler.recipients == [f"fan{n}@example.com" for n in range(4)]
        assert (len(sessions), sender.connections) == (2, 2)

        idle = SmtpSender(f"smtp://127.0.0.1:{port}", timeout=2, idle_seconds=0)  # never trusts an idle one
        await idle.send(plain_email("fan4@example.com"))
        await idle.send(plain_email("fan5@example.com"))
        assert idle.connections == 2 and handler.recipients[-2:] == ["fan4@example.com", "fan5@example.com"]
        await idle.close()
        await sender.close()


class SlowRecording(Recording):
    """Takes an email's data only when the test lets it, noting how many were taken at once."""

    def __init__(self) -> None:
        super().__init__()
        self.taking = 0
        self.most_at_once = 0
        self.gate = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.taking += 1
        self.most_at_once = max(self.most_at_once, self.taking)
        await self.gate.wait()
        self.taking -= 1
        return await super().handle_DATA(server, session, envelope)


async def test_emails_sent_together_share_the_open_lines_one_email_each_and_close_waits_for_them() -> None:
    handler = SlowRecording()
    async with smtp_server(handler) as (port, sessions):
        sender = SmtpSender(f"smtp://127.0.0.1:{port}", timeout=2, lines=3)
        sending = [asyncio.ensure_future(sender.send(plain_email(f"fan{n}@example.com"))) for n in range(5)]
        async with asyncio.timeout(5):
            while handler.taking < 3:
                await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(sender.close())
        handler.gate.set()
        await closing
        assert all(s.done() for s in sending), "close waits for the emails on their way"
        await asyncio.gather(*sending)
        assert handler.most_at_once == 3, "one email at a time on each of the three lines"
        assert sorted(handler.recipients) == [f"fan{n}@example.com" for n in range(5)]
        assert (len(sessions), sender.connections) == (3, 3)


async def test_after_a_refusal_the_next_email_goes_on_a_new_connection() -> None:
    async with smtp_server(RefuseEveryone()) as (port, sessions):
        sender = SmtpSender(f"smtp://127.0.0.1:{port}", timeout=2)
        for _ in range(2):
            with pytest.raises(PermanentMailError):
                await sender.send(plain_email("x@example.com"))
        assert sender.connections == 2 and len(sessions) == 2
        await sender.close()


async def test_a_full_mailbox_asks_senders_to_try_later_and_keeps_what_it_has(tmp_path: Path) -> None:
    """Its SMTP port takes mail from every local user: bounded, so that nobody fills the database's disk."""
    def mail(n: int) -> EmailMessage:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.com", "fan@example.com", f"mail {n}"
        message.set_content("x" * 1500)
        return message

    async with running_mailbox(tmp_path) as mailbox:
        mailbox.store.most_bytes = 4000
        sender = SmtpSender(f"smtp://127.0.0.1:{mailbox.smtp_port}")
        try:
            await sender.send(mail(1))
            await sender.send(mail(2))
            with pytest.raises(TransientMailError, match=r"452 4\.3\.1 Insufficient storage"):
                await sender.send(mail(3))
            assert len(mailbox.store.ids()) == 2
            mailbox.store.most_bytes = 1 << 20
            await sender.send(mail(3))  # taken once there is room again
            assert len(mailbox.store.ids()) == 3
            mailbox.store.keep_free_bytes = 1 << 62  # more than any disk has
            with pytest.raises(TransientMailError, match="would be left on its disk"):
                await sender.send(mail(4))
        finally:
            await sender.close()
