"""A stand-in for the internet as a notebook sees it (pip install), for tests/e2e/test_sandbox.py:
a PEP 503 "simple" index with one pure-Python wheel, `hubdesk-probe`, built here from nothing, on
an address outside every private range (the test's own network on a documentation range).

    python3 pypi.py PORT
"""

import base64
import hashlib
import io
import sys
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, VERSION = "hubdesk_probe", "1.0"
WHEEL = f"{NAME}-{VERSION}-py3-none-any.whl"


def wheel() -> bytes:
    files = {
        f"{NAME}/__init__.py": b'REACHED = "the internet, through the worker\'s NAT"\n',
        f"{NAME}-{VERSION}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: hubdesk-probe\nVersion: {VERSION}\n".encode(),
        f"{NAME}-{VERSION}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hubdesk-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{NAME}-{VERSION}.dist-info/RECORD,,")
    files[f"{NAME}-{VERSION}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return buf.getvalue()


DATA = wheel()
SHA = hashlib.sha256(DATA).hexdigest()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.rstrip("/") in ("/simple/hubdesk-probe", "/simple/hubdesk_probe"):
            body = f'<html><body><a href="/files/{WHEEL}#sha256={SHA}">{WHEEL}</a></body></html>'.encode()
            ctype = "text/html"
        elif self.path == f"/files/{WHEEL}":
            body, ctype = DATA, "application/octet-stream"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
