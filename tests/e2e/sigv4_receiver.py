"""An OTLP/HTTP receiver that checks AWS SigV4 signatures as AWS would, with botocore's own
signer: the test's independent judge of tests/it/otlp_sigv4.rs (run from the e2e venv).

    python sigv4_receiver.py --access-key AKID --secret S [--token T] --service xray \
        --region eu-west-1

Listens on 127.0.0.1 (a free port, printed as `listening PORT` on the first line of stdout).

- `POST /v1/traces`: the signature is recomputed from the request as received (method, path,
  query, the headers its SignedHeaders names, the body's SHA-256) with the secret in effect
  and the configured service and region, at the request's own x-amz-date. A match answers 200
  with an empty ExportTraceServiceResponse (no bytes); anything else answers 403 with the
  reason. Either way the request is recorded.
- `POST /control/secret`: the body becomes the secret in effect (the test's way to refuse, then
  accept again).
- `GET /control/requests`: every recorded request, as JSON.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/,\s]+)/"
    r"(?P<service>[^/,\s]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;\-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
# How far a request's x-amz-date may be from now (AWS allows 15 minutes).
MAX_SKEW = datetime.timedelta(minutes=15)


class State:
    def __init__(self, args):
        self.args = args
        self.secret = args.secret
        self.records = []
        self.lock = threading.Lock()


def verify(state, method, path, headers, body):
    """(None, details) when the signature holds, else (reason, details)."""
    args = state.args
    details = {}
    auth = headers.get("authorization", "")
    m = AUTH_RE.match(auth)
    if not m:
        return "no AWS4-HMAC-SHA256 authorization header: %r" % auth[:80], details
    details.update(
        access_key=m["key"],
        scope_date=m["date"],
        region=m["region"],
        service=m["service"],
        signed_headers=m["signed"].split(";"),
    )
    amz_date = headers.get("x-amz-date", "")
    details["amz_date"] = amz_date
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return "x-amz-date %r is not a SigV4 timestamp" % amz_date, details
    if abs(datetime.datetime.now(datetime.timezone.utc) - when) > MAX_SKEW:
        return "x-amz-date %s is more than 15 minutes from now" % amz_date, details
    if m["date"] != amz_date[:8]:
        return "the credential scope's date differs from x-amz-date", details
    if m["key"] != args.access_key:
        return "unknown access key %s" % m["key"], details
    if m["region"] != args.region or m["service"] != args.service:
        return "signed for %s/%s, not %s/%s" % (
            m["region"], m["service"], args.region, args.service), details
    signed = details["signed_headers"]
    must = ["host", "x-amz-date", "content-type"]
    if "content-encoding" in headers:
        must.append("content-encoding")
    if args.token:
        must.append("x-amz-security-token")
    for name in must:
        if name not in signed:
            return "header %s is not signed" % name, details
    for name in signed:
        if name not in headers:
            return "signed header %s was not sent" % name, details
    if args.token and headers.get("x-amz-security-token") != args.token:
        return "wrong session token", details

    # botocore recomputes the signature from what arrived.
    with state.lock:
        secret = state.secret
    creds = Credentials(args.access_key, secret, args.token or None)
    signer = SigV4Auth(creds, args.service, args.region)
    request = AWSRequest(
        method=method,
        url="http://%s%s" % (headers["host"], path),
        headers={name: headers[name] for name in signed},
        data=body,
    )
    request.context["timestamp"] = amz_date
    canonical = signer.canonical_request(request)
    details["payload_hash"] = canonical.rsplit("\n", 1)[-1]
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, m["signature"]):
        return "signature mismatch", details
    return None, details


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("sigv4_receiver: " + (fmt % a) + "\n")

    def _body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def _answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/control/requests":
            with self.server.state.lock:
                text = json.dumps(self.server.state.records)
            self._answer(200, text.encode(), "application/json")
        else:
            self._answer(404, b"not found", "text/plain")

    def do_POST(self):
        state = self.server.state
        body = self._body()
        if self.path == "/control/secret":
            with state.lock:
                state.secret = body.decode()
            self._answer(200, b"ok", "text/plain")
            return
        if self.path.split("?", 1)[0] != "/v1/traces":
            self._answer(404, b"not found", "text/plain")
            return
        # Header names are case-insensitive; a repeated header would be joined by commas.
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + "," + value if name in headers else value
        try:
            reason, details = verify(state, "POST", self.path, headers, body)
        except Exception as e:  # a bug here must show as a refusal, not pass
            reason, details = "receiver error: %r" % e, {}
        record = dict(
            details,
            status=403 if reason else 200,
            reason=reason,
            content_encoding=headers.get("content-encoding"),
            content_type=headers.get("content-type"),
            body_sha256=hashlib.sha256(body).hexdigest(),
            body=base64.b64encode(body).decode(),
        )
        with state.lock:
            state.records.append(record)
        if reason:
            self._answer(403, reason.encode(), "text/plain")
        else:
            self._answer(200, b"", "application/x-protobuf")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--token", default="")
    p.add_argument("--service", default="xray")
    p.add_argument("--region", required=True)
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(args)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
