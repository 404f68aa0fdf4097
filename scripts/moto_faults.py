"""A moto server that injects faults, for the fault-injection tests (run with the sandbox's venv python).

    python scripts/moto_faults.py --port N [--throttle-every K] [--server-error-every K]
                                  [--creating-seconds S] [--seed]

It serves moto's own WSGI application (the one `moto_server` runs) on 127.0.0.1:N behind a
middleware. With --throttle-every K every K-th AWS request is answered with HTTP 400
Throttling (RDS) / RequestLimitExceeded (EC2) without reaching moto; with --server-error-every K
every K-th request gets HTTP 503 ServiceUnavailable (if both match, throttling wins; 0 turns a
fault off). With --creating-seconds S, an instance called `restore-*` is reported as `creating`
instead of `available` for S seconds after its RestoreDBInstanceToPointInTime succeeded.
--seed creates `prod-db` and friends exactly like scripts/sandbox_moto.py; faults are off (and
requests not counted) until seeding is done. Once listening (and seeded) it prints `ready N` on
stdout, then serves until SIGTERM/SIGINT.

Control endpoint: `GET /_faults` returns the settings and counters as JSON; `POST /_faults`
with a JSON object such as {"throttle_every": 3, "server_error_every": 0, "creating_seconds": 5}
changes the given settings and resets the counters, so the K-th request after the POST is the
first one faulted.
"""
import argparse
import io
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

SETTINGS = ("throttle_every", "server_error_every", "creating_seconds")
COUNTERS = ("requests", "throttled", "errored", "rewritten")

# One <DBInstance> element of a response, and the identifier inside it.
DB_INSTANCE = re.compile(rb"<DBInstance>.*?</DBInstance>", re.S)
IDENTIFIER = re.compile(rb"<DBInstanceIdentifier>(.*?)</DBInstanceIdentifier>")


def check_every(name, value):
    # Every request (K=1) would make every call fail even with retries, hence K >= 2.
    if not isinstance(value, int) or value < 0 or value == 1:
        raise ValueError(f"{name} must be 0 (off) or an integer >= 2, not {value!r}")
    return value


def check_seconds(name, value):
    if not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    return value


CHECKS = {"throttle_every": check_every, "server_error_every": check_every,
          "creating_seconds": check_seconds}


def error_body(service, code, message, fault_type):
    """The Query-protocol error body the AWS SDKs parse; EC2 has a shape of its own."""
    request_id = str(uuid.uuid4())
    if service == "ec2":
        return (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
                f"</Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
    return (f"<ErrorResponse><Error><Type>{fault_type}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
            f"</ErrorResponse>").encode()


def signing_service(environ):
    """The service of a SigV4 credential scope: Credential=AKID/date/region/<service>/aws4_request."""
    match = re.search(r"Credential=[^/,]*/[^/,]*/[^/,]*/([^/,]*)/aws4_request",
                      environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1).lower() if match else None


class Faults:
    """WSGI middleware in front of moto."""

    def __init__(self, app, throttle_every=0, server_error_every=0, creating_seconds=0):
        self.app = app
        self.lock = threading.Lock()
        self.settings = {"throttle_every": throttle_every,
                         "server_error_every": server_error_every,
                         "creating_seconds": creating_seconds}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.enabled = False  # switched on once seeding is done
        self.restored_at = {}  # restore-* identifier -> when its restore first succeeded

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_faults":
            return self.control(environ, start_response)
        if environ.get("PATH_INFO", "").startswith("/moto-api"):
            return self.app(environ, start_response)  # moto's dashboard/reset API: no faults

        form = self.read_form(environ)
        action = form.get("Action", [""])[0]
        service = signing_service(environ)  # "rds", "ec2", ... (None if unsigned)

        fault = self.pick_fault()
        if fault == "throttled":
            if service == "ec2":
                body = error_body(service, "RequestLimitExceeded", "Request limit exceeded.", "Sender")
            else:
                body = error_body(service, "Throttling", "Rate exceeded", "Sender")
            return self.respond(start_response, "400 Bad Request", body)
        if fault == "errored":
            body = error_body(service, "ServiceUnavailable",
                              "Service is unavailable. Please try again later.", "Receiver")
            return self.respond(start_response, "503 Service Unavailable", body)

        if service != "rds":
            return self.app(environ, start_response)
        return self.rewrite_rds(environ, start_response, action, form)

    def read_form(self, environ):
        """Parse a form-encoded body, leaving an unread copy in wsgi.input for moto."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if not environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            return {}
        return urllib.parse.parse_qs(body.decode("utf-8", "replace"))

    def pick_fault(self):
        with self.lock:
            if not self.enabled:
                return None
            self.counters["requests"] += 1
            n = self.counters["requests"]
            for fault, setting in (("throttled", "throttle_every"), ("errored", "server_error_every")):
                every = self.settings[setting]
                if every and n % every == 0:
                    self.counters[fault] += 1
                    return fault
        return None

    def rewrite_rds(self, environ, start_response, action, form):
        """Run moto, then report recently restored restore-* instances as `creating`."""
        captured = {}
        chunks = []

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)
            return chunks.append  # the legacy write() callable

        result = self.app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        body = b"".join(chunks)
        status = captured["status"]

        now = time.monotonic()
        with self.lock:
            target = form.get("TargetDBInstanceIdentifier", [""])[0].lower()
            if (action == "RestoreDBInstanceToPointInTime" and status.startswith("200")
                    and target.startswith("restore-")):
                self.restored_at.setdefault(target, now)
            window = self.settings["creating_seconds"]
            creating = {ident for ident, t0 in self.restored_at.items() if now - t0 < window}

        if creating:
            def rewrite(match):
                element = match.group(0)
                ident = IDENTIFIER.search(element)
                if not ident or ident.group(1).decode().lower() not in creating:
                    return element
                new = element.replace(b"<DBInstanceStatus>available</DBInstanceStatus>",
                                      b"<DBInstanceStatus>creating</DBInstanceStatus>")
                if new != element:
                    with self.lock:
                        self.counters["rewritten"] += 1
                return new

            body = DB_INSTANCE.sub(rewrite, body)

        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def control(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                changes = json.loads(environ["wsgi.input"].read(length) or b"{}")
                unknown = set(changes) - set(SETTINGS)
                if unknown:
                    raise ValueError(f"unknown settings {sorted(unknown)}; known: {list(SETTINGS)}")
                for name, value in changes.items():
                    CHECKS[name](name, value)
            except ValueError as err:  # json.JSONDecodeError is a ValueError too
                return self.respond(start_response, "400 Bad Request",
                                    json.dumps({"error": str(err)}).encode(), "application/json")
            with self.lock:
                self.settings.update(changes)
                self.counters = dict.fromkeys(COUNTERS, 0)
        with self.lock:
            state = {**self.settings, **self.counters, "seeded_and_enabled": self.enabled,
                     "pid": os.getpid()}
        return self.respond(start_response, "200 OK", json.dumps(state).encode(), "application/json")

    @staticmethod
    def respond(start_response, status, body, content_type="text/xml"):
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


def wait_until_serving(port, timeout=30):
    """Wait for *this* process to answer on the port (pid check: not some other server there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_faults", timeout=2) as resp:
                if json.load(resp).get("pid") == os.getpid():
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"not serving on port {port} after {timeout}s")


def start_up(faults, port, seed):
    try:
        wait_until_serving(port)
        if seed:
            os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import sandbox_moto
            sandbox_moto.seed()
    except Exception as err:  # noqa: BLE001 - any failure here must end the process visibly
        print(f"moto_faults: start-up failed: {err!r}", file=sys.stderr, flush=True)
        os._exit(1)  # the main thread is inside run_simple; exit the whole process
    with faults.lock:
        faults.enabled = True
    print(f"ready {port}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--throttle-every", type=int, default=0, metavar="K")
    parser.add_argument("--server-error-every", type=int, default=0, metavar="K")
    parser.add_argument("--creating-seconds", type=float, default=0, metavar="S")
    parser.add_argument("--seed", action="store_true")
    args = parser.parse_args()
    try:
        check_every("--throttle-every", args.throttle_every)
        check_every("--server-error-every", args.server_error_every)
        check_seconds("--creating-seconds", args.creating_seconds)
    except ValueError as err:
        parser.error(str(err))

    # moto_server sets this too; some moto services build URLs to themselves from it.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    # Both signals end run_simple cleanly. SIGINT gets a handler of its own as well, because a
    # process started in the background by a non-interactive shell inherits SIGINT as ignored.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))

    faults = Faults(DomainDispatcherApplication(create_backend_app), args.throttle_every,
                    args.server_error_every, args.creating_seconds)
    threading.Thread(target=start_up, args=(faults, args.port, args.seed), daemon=True).start()
    run_simple("127.0.0.1", args.port, faults, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
