"""Steps the browser tests share."""

from playwright.sync_api import expect


def sign_in(page, username: str, password: str) -> None:
    """Sign in through the login form and wait until the navbar shows the user."""
    page.goto("/login/")
    form = page.locator("form:has(input[name=username])")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    form.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("whoami")).to_have_text(username)


def submit(page, form, button: str, url: str, *, timeout_ms: int = 30_000) -> None:
    """Submit a console form (a plain POST, then a redirect) and check the server took it."""
    with page.expect_response(lambda r: r.request.method == "POST" and r.url == url, timeout=timeout_ms) as info:
        form.get_by_role("button", name=button, exact=True).click()
    assert info.value.status == 302, f"POST {url} answered {info.value.status}"


def expect_landed(page, message: str, *, timeout_ms: int = 30_000) -> None:
    """The page the POST redirected to is shown (its flash message is there, no error)."""
    expect(page.get_by_role("alert").filter(has_text=message)).to_have_count(1, timeout=timeout_ms)
    page.wait_for_load_state()
    expect(page.locator(".notification.is-danger")).to_have_count(0)
