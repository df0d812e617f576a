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
