#!/usr/bin/env python3
"""Drive headless Chromium in real time through the DevTools protocol.

`chromium --dump-dom --virtual-time-budget` cannot test a page whose fetch
hangs forever (in a path-MTU black hole, say): virtual time stands still while
a request is pending, so the page's own timers never fire. This script instead
talks to Chromium over `--remote-debugging-pipe` (Chromium reads NUL-terminated
JSON commands on its fd 3 and writes NUL-terminated JSON on its fd 4), opens
URL, and polls a JavaScript expression every 200 ms of real (wall-clock) time
until it equals one of the wanted values or the deadline passes.

It prints one JSON object on stdout:
    {"reached": bool, "value": <last value of the expression>,
     "elapsed_ms": <ms from navigation start to reached or to the deadline>,
     "html": <document.documentElement.outerHTML, or null if the page hung>,
     "navigation_error": <Page.navigate's errorText, or null>}

Exit status 0 whether or not the value was reached; 2 (with a message on
stderr) when Chromium cannot be started or the protocol fails. Chromium is
killed at the end in every case. Stdlib only; needs no network beyond the
page's, so it runs inside `ip netns exec NS`.

Usage:
    cdp.py --url URL --until-js EXPR --until VALUE [--until VALUE...]
           --deadline SECONDS [--screenshot PNG] [--chromium PROGRAM]
           [-- EXTRA_CHROMIUM_FLAGS...]
"""

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]
POLL_SECONDS = 0.2
# Setup commands (create a tab, attach) answer at once; a wedged browser does not.
SETUP_SECONDS = 30.0
# After the deadline: how long the page may take to hand over its HTML and a
# screenshot (a renderer stuck in a script would never answer).
FINISH_SECONDS = 10.0
VIEWPORT = (1200, 2600)


class ProtocolError(Exception):
    pass


class Browser:
    """A Chromium process and its DevTools pipe."""

    def __init__(self, program, extra_flags):
        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "w+b")
        # Chromium expects the pipe ends at exactly fd 3 and fd 4. Keep ours
        # above 10 so that placing them cannot overwrite one another.
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (cmd_r, res_w)]
        os.close(cmd_r)
        os.close(res_w)

        def place_pipes():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        args = [program, *FLAGS, "--user-data-dir=" + self.profile, *extra_flags]
        try:
            # Its own process group, so its helpers die with it.
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self.log,
                pass_fds=(3, 4),
                preexec_fn=place_pipes,
                start_new_session=True,
            )
        except OSError as e:
            self.proc = None
            self.close()
            raise ProtocolError(f"cannot start {program}: {e}") from e
        finally:
            for fd in high:
                os.close(fd)
        self.buffer = b""
        self.next_id = 0
        self.answers = {}

    def send(self, method, params=None, session=None):
        """Sends a command; returns its id."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self.cmd_w, json.dumps(message).encode() + b"\0")
        except OSError as e:
            raise ProtocolError(f"{method}: Chromium closed its pipe ({e})") from e
        return self.next_id

    def wait(self, command_id, until):
        """The result of command `command_id`, or None if `until` (a
        time.monotonic() value) passes first. Raises on a protocol error."""
        while command_id not in self.answers:
            left = until - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.res_r], [], [], left)
            if ready:
                self._read()
        answer = self.answers.pop(command_id)
        if "error" in answer:
            raise ProtocolError(f"command {command_id}: {answer['error']}")
        return answer.get("result", {})

    def call(self, method, params=None, session=None, seconds=SETUP_SECONDS):
        result = self.wait(self.send(method, params, session), time.monotonic() + seconds)
        if result is None:
            raise ProtocolError(f"{method}: no answer within {seconds:.0f} s")
        return result

    def _read(self):
        chunk = os.read(self.res_r, 1 << 16)
        if not chunk:
            raise ProtocolError("Chromium closed its DevTools pipe (it exited)")
        self.buffer += chunk
        *messages, self.buffer = self.buffer.split(b"\0")
        for raw in messages:
            message = json.loads(raw)
            if "id" in message:  # events (no id) are not needed
                self.answers[message["id"]] = message

    def log_tail(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def close(self):
        if self.proc is not None:
            # The whole group, renderers and zygotes too. Chromium's own pid
            # is the group id, and stays reserved until it is reaped below.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        for fd in (self.cmd_w, self.res_r):
            os.close(fd)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def matches(value, wanted):
    """A string value is compared as is; anything else as its JSON text
    (true, 3, null)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text in wanted


def evaluate(browser, session, expression, until):
    """The expression's value, or None if it threw, did not answer in time,
    or had no page to run in (during a navigation)."""
    params = {"expression": expression, "returnByValue": True}
    try:
        result = browser.wait(browser.send("Runtime.evaluate", params, session), until)
    except ProtocolError:  # "Execution context was destroyed", etc.
        return None
    if not result or "exceptionDetails" in result:
        return None
    return result["result"].get("value")


def run(args):
    browser = Browser(args.chromium, args.extra)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})
        session = browser.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )["sessionId"]
        width, height = VIEWPORT
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        start = time.monotonic()
        deadline = start + args.deadline
        # Page.navigate answers only once the document commits (or fails),
        # which may be never: poll meanwhile; its answer waits in `answers`.
        navigate = browser.send("Page.navigate", {"url": args.url}, session)
        value, reached = None, False
        while True:
            value = evaluate(browser, session, args.until_js, deadline)
            if matches(value, args.until):
                reached = True
                break
            if time.monotonic() + POLL_SECONDS >= deadline:
                break
            time.sleep(POLL_SECONDS)
        elapsed_ms = round((time.monotonic() - start) * 1000)
        navigation_error = None
        if navigate in browser.answers:
            navigation_error = browser.wait(navigate, deadline).get("errorText")

        finish = time.monotonic() + FINISH_SECONDS
        html = evaluate(
            browser,
            session,
            "document.documentElement ? document.documentElement.outerHTML : null",
            finish,
        )
        if args.screenshot:
            shot = browser.wait(
                browser.send("Page.captureScreenshot", {"format": "png"}, session), finish
            )
            if shot is None:
                raise ProtocolError("Page.captureScreenshot: no answer")
            with open(args.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        return {
            "reached": reached,
            "value": value,
            "elapsed_ms": elapsed_ms,
            "html": html,
            "navigation_error": navigation_error or None,
        }
    except ProtocolError as e:
        raise ProtocolError(f"{e}\n--- chromium log (tail) ---\n{browser.log_tail()}") from e
    finally:
        browser.close()


def main():
    parser = argparse.ArgumentParser(
        description="Open a page in headless Chromium and wait, in real time, "
        "until a JavaScript expression has one of the wanted values."
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--until-js", required=True, help="expression polled every 200 ms")
    parser.add_argument("--until", action="append", required=True, help="a wanted value")
    parser.add_argument("--deadline", type=float, required=True, help="seconds of real time")
    parser.add_argument("--screenshot", help="write a PNG of the page here at the end")
    parser.add_argument("--chromium", default="chromium", help="the browser program")
    parser.add_argument("extra", nargs="*", help="extra Chromium flags, after --")
    args = parser.parse_args()
    # Killed by `timeout` (SIGTERM): still run the cleanup that kills Chromium.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run(args)
    except ProtocolError as e:
        print(f"cdp.py: {e}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
