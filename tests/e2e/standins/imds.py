"""A stand-in for the EC2 instance metadata service (IMDS), for tests/e2e/test_sandbox.py.

Runs in a container whose network namespace has 169.254.169.254 on its loopback and an address
on the test's swarm network; every instance node container routes 169.254.169.254 to it. The
instance is known by the request's source address. What each instance may see comes from the
state file the test writes from moto (`refresh`): its metadata options as EC2 recorded them
from hubdesk's RunInstances, its role, its user-data.

As EC2 does:
- `PUT /latest/api/token` (IMDSv2) answers a token, and the answer's IP packets leave with a TTL
  of the instance's HttpPutResponseHopLimit: with 1 it reaches the instance itself, and dies at
  the first forwarding hop, the instance's own NAT in front of its containers;
- with HttpTokens=required a GET without a valid token is 401; with optional (IMDSv1) it answers;
- HttpEndpoint=disabled answers nothing (connection closed).
Every request is logged as one JSON line on stdout (the test reads the log).

    python3 imds.py STATE_FILE [PORT]
"""

import base64
import json
import secrets
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 80
TOKENS = {}  # token -> (source ip, expiry)


def state():
    try:
        with open(STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def log(**kw):
    print(json.dumps({"t": round(time.time(), 3), **kw}), flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # one JSON line per request instead
        pass

    def instance(self):
        return state().get(self.client_address[0])

    def reply(self, status, body=b"", ttl=None, headers=()):
        if ttl is not None:
            # The hop limit: the answer's packets carry this TTL (set before anything is sent).
            self.connection.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, int(ttl))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        inst = self.instance()
        if inst is None or inst.get("http_endpoint") == "disabled":
            log(src=self.client_address[0], method="PUT", path=self.path, status="unknown instance")
            self.close_connection = True
            return
        if self.path != "/latest/api/token" or "X-Forwarded-For" in self.headers:
            self.reply(400 if self.path == "/latest/api/token" else 404)
            return
        ttl_secs = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "0") or 0)
        if not 1 <= ttl_secs <= 21600:
            self.reply(400)
            return
        token = secrets.token_urlsafe(32)
        TOKENS[token] = (self.client_address[0], time.time() + ttl_secs)
        hop = int(inst.get("hop_limit", 1))
        log(src=self.client_address[0], method="PUT", path=self.path, status=200, ttl=hop)
        # EC2 says how long the token lives; the AWS SDKs refuse a token answer without it.
        self.reply(200, token.encode(), ttl=hop,
                   headers=[("X-aws-ec2-metadata-token-ttl-seconds", str(ttl_secs))])

    def do_GET(self):
        src = self.client_address[0]
        inst = self.instance()
        if inst is None or inst.get("http_endpoint") == "disabled":
            log(src=src, method="GET", path=self.path, status="unknown instance")
            self.close_connection = True
            return
        token = self.headers.get("X-aws-ec2-metadata-token")
        valid = token in TOKENS and TOKENS[token][0] == src and TOKENS[token][1] > time.time()
        if token is not None and not valid:
            return self.answer(401, b"")
        if token is None and inst.get("http_tokens", "optional") == "required":
            return self.answer(401, b"")
        role = inst.get("role") or ""
        paths = {
            "/latest/meta-data/instance-id": inst.get("instance_id", ""),
            "/latest/meta-data/local-ipv4": src,
            "/latest/meta-data/iam/security-credentials/": role,
            "/latest/user-data": inst.get("user_data", ""),
        }
        if role:
            paths[f"/latest/meta-data/iam/security-credentials/{role}"] = json.dumps({
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": "ASIASTANDIN" + inst.get("instance_id", "")[-8:].upper(),
                "SecretAccessKey": "stand-in-secret-of-" + role,
                "Token": "stand-in-session-token",
                "Expiration": "2099-01-01T00:00:00Z",
            })
        if self.path == "/latest/user-data" and inst.get("user_data_b64"):
            # As EC2 serves it: the bytes RunInstances carried (base64 only on the API).
            return self.answer(200, base64.b64decode(inst["user_data_b64"]))
        if self.path not in paths or (self.path.endswith("/security-credentials/") and not role):
            return self.answer(404, b"")
        self.answer(200, paths[self.path].encode())

    def answer(self, status, body):
        log(src=self.client_address[0], method="GET", path=self.path, status=status)
        self.reply(status, body)


if __name__ == "__main__":
    log(msg=f"imds stand-in on :{PORT}, state {STATE}")
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
