"""A browser context that reaches the gateway and nothing else: for pages that must work with the network off."""

from __future__ import annotations

from typing import Any

from tests.platforms import RunningPlatform


async def offline_page(browser: Any, platform: RunningPlatform, **context_options: Any) -> tuple[Any, Any, list[str],
                                                                                                  list[str]]:
    """(context, page, the outside URLs the page asked for, what the content security policy refused)."""
    context = await browser.new_context(**context_options)
    outside: list[str] = []

    async def only_the_gateway(route: Any) -> None:
        if route.request.url.startswith(platform.base_url):
            await route.continue_()
        else:
            outside.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_the_gateway)
    page = await context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    return context, page, outside, refused
