"""A TCP listener that says who connected, for tests/e2e/test_sandbox.py: the stand-in for the
NFS node's port 2049 (the kernel here has no NFS server). Each connection is one JSON line on
stdout with the peer's address and source port (a source port below 1024 is what NFS's
`secure` export option trusts), then the listener answers a line and closes.

    python3 listener.py PORT [PORT ...]
"""

import json
import socket
import sys
import threading
import time


def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        conn, (host, peer_port) = s.accept()
        print(json.dumps({"t": round(time.time(), 3), "port": port, "peer": host, "peer_port": peer_port}),
              flush=True)
        try:
            conn.sendall(b"STAND-IN %d\n" % port)
        finally:
            conn.close()


if __name__ == "__main__":
    ports = [int(p) for p in sys.argv[1:]]
    for p in ports[1:]:
        threading.Thread(target=serve, args=(p,), daemon=True).start()
    print(json.dumps({"msg": f"listening on {ports}"}), flush=True)
    serve(ports[0])
