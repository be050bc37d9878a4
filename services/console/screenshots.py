"""The README's console screenshots, taken by headless chromium against a running stack after
`make demo`, by walking the newcomer's path: the clerk requests the override of the hold the demo
leaves open, the ops lead approves it.

    make demo && .venv/bin/python -m services.console.screenshots [--url http://127.0.0.1:8090]

Needs selenium (the dev extra) and Debian's chromium and chromium-driver (deploy/install.sh).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from services.console.config import ConsoleSettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
REQUESTER, APPROVER = "ap.clerk@example.com", "ops.lead@example.com"


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(3)
    return driver


def shoot(driver: Any, name: str) -> None:
    # The whole page, not only the first screenful: widen the window to the document's height.
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, max(900, min(int(height) + 40, 2400)))
    path = DOCS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1366, 900)
    print(f"wrote {path}")


def sign_in(driver: Any, url: str, email: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{url}/signin")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys("local-dev-" + email.split("@")[0])
    driver.find_element(By.ID, "signin").click()
    driver.find_element(By.ID, "signed-in-as")  # waits for the signed-in page: the cookie is set


def main() -> None:
    from selenium.webdriver.common.by import By

    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=f"http://127.0.0.1:{ConsoleSettings().console_port}")
    parser.add_argument("--paid-invoice", help="Also the page of this invoice (the demo prints inv-a-<run>).")
    args = parser.parse_args()
    url = args.url
    DOCS.mkdir(parents=True, exist_ok=True)
    driver = browser()
    try:
        driver.get(f"{url}/signin")
        shoot(driver, "signin")
        sign_in(driver, url, REQUESTER)
        driver.get(f"{url}/holds")
        shoot(driver, "holds")
        rows = driver.find_elements(By.CSS_SELECTOR, "#holds tr[data-hold]")
        if not rows:
            raise SystemExit("no open hold: run `make demo` first")
        invoice_id = rows[-1].get_attribute("data-invoice")
        rows[-1].find_element(By.LINK_TEXT, "Open").click()
        driver.find_element(By.ID, "justification").send_keys(
            "The warehouse confirmed the extra units by phone."
        )
        driver.find_element(By.ID, "evidence").send_keys("mail://warehouse/receipt-correction")
        shoot(driver, "hold")
        driver.find_element(By.ID, "request-override").click()
        request_url = driver.current_url
        shoot(driver, "override-requested")
        sign_in(driver, url, APPROVER)
        driver.get(request_url)
        driver.find_element(By.ID, "approve").click()
        for _ in range(30):
            answer = driver.find_elements(By.ID, "answer")
            if answer and "waiting" not in answer[0].text:
                break
            time.sleep(1)
            driver.refresh()
        shoot(driver, "override-released")
        driver.get(f"{url}/invoices/{invoice_id}")
        shoot(driver, "invoice")
        if args.paid_invoice:
            driver.get(f"{url}/invoices/{args.paid_invoice}")
            shoot(driver, "invoice-paid")
        driver.get(f"{url}/reconciliation")
        shoot(driver, "reconciliation")
        driver.get(f"{url}/deadletter")
        shoot(driver, "deadletter")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
