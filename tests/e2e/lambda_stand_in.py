"""A stand-in for the Lambda Invoke API, for the end-to-end test (tests/e2e_emulator.rs).

AWS's local emulator (dex-local-runner) runs a durable execution by calling Lambda's Invoke API
(POST /2015-03-31/functions/{FunctionName}/invocations) on its --lambda-endpoint, usually
`sam local start-lambda` with Docker. This server answers Invoke by running the handler of
functions.py in this process. The durable SDK inside the handler checkpoints back to the
emulator with boto3, which AWS_ENDPOINT_URL_LAMBDA points at the emulator.

    python lambda_stand_in.py --ready-file PATH [--parent-pid PID]

It listens on a free port of 127.0.0.1 and, once it does, writes PATH (atomically) with
{"port": N, "function_configs": {...}}: its port, and the chained-invoke targets in the shape
of dex-local-runner's --function-configs. It logs every invocation to stderr and, with
--parent-pid, exits when that process (the test) is gone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from aws_durable_execution_sdk_python_testing.model import LambdaContext  # noqa: E402

import functions  # noqa: E402

log = logging.getLogger("lambda-stand-in")
REGION = os.environ.get("AWS_REGION", "us-west-2")
ACCOUNT = "123456789012"
PREFIX = "/2015-03-31/functions/"
SUFFIX = "/invocations"


class Invoke(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status: int, body: dict, headers: dict[str, str]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        request_id = str(uuid.uuid4())
        if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            self.reply(404, {"Type": "User", "Message": f"no route {path}"},
                       {"x-amzn-ErrorType": "ResourceNotFoundException"})
            return
        # FunctionName: a name, name:qualifier, or a function ARN.
        ident = unquote(path[len(PREFIX):-len(SUFFIX)])
        name = ident.split(":")[6] if ident.startswith("arn:") else ident.split(":")[0]
        handler = functions.FUNCTIONS.get(name)
        if handler is None:
            log.warning("invoke of unknown function %s", ident)
            self.reply(404, {"Type": "User",
                             "Message": f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"},
                       {"x-amzn-ErrorType": "ResourceNotFoundException",
                        "x-amzn-RequestId": request_id})
            return
        try:
            event = json.loads(payload) if payload else {}
        except ValueError:
            event = payload.decode("utf-8", "replace")
        context = LambdaContext(
            aws_request_id=request_id,
            function_name=name,
            function_version="$LATEST",
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ident}",
            memory_limit_in_mb="128",
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name="e2e",
        )
        headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id}
        started = time.monotonic()
        try:
            result = handler(event, context)
            status = result.get("Status") if isinstance(result, dict) else None
            log.info("invoke %s request %s -> %s in %.3fs", name, request_id, status,
                     time.monotonic() - started)
        except Exception as exc:  # an unhandled function error, as Lambda reports it
            log.exception("invoke %s request %s raised", name, request_id)
            result = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                      "stackTrace": traceback.format_exception(exc)}
            headers["X-Amz-Function-Error"] = "Unhandled"
        self.reply(200, result, headers)

    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)


def exit_with(parent: int) -> None:
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            log.warning("process %d is gone: exiting", parent)
            os._exit(0)
        except PermissionError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("E2E_STAND_IN_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.parent_pid:
        threading.Thread(target=exit_with, args=(args.parent_pid,), daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Invoke)
    server.daemon_threads = True
    port = server.server_address[1]
    log.info("listening on 127.0.0.1:%d (pid %d); emulator at %s; functions: %s", port,
             os.getpid(), os.environ.get("AWS_ENDPOINT_URL_LAMBDA"),
             ", ".join(sorted(functions.FUNCTIONS)))
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"port": port, "function_configs": functions.INVOKE_TARGETS}, f)
    os.replace(tmp, args.ready_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
