"""Run inside the hub image by tests/e2e/test_spawner_profile.py: HubdeskAnnouncements (the hub's
side of hubdesk's announcements) against a stand-in for /oauth/announcements on loopback. Prints
one JSON line per case."""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
sys.path.insert(0, "/x")
from hubdesk_spawner import HubdeskAnnouncements

FEED = {"announcements": [
    {"id": 1, "message": "Lunch is at 12:30 <b>sharp</b>", "group": None,
     "ends_at": "2999-01-01T00:00:00Z", "dismissed_by": ["grace"]},
    {"id": 2, "message": "Blue meets in room 4", "group": "cohort-blue",
     "ends_at": "2999-01-01T00:00:00Z", "dismissed_by": []},
    {"id": 3, "message": "Yesterday's news", "group": None,
     "ends_at": "2000-01-01T00:00:00Z", "dismissed_by": []},
]}
seen = []

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps(FEED).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

srv = HTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()

class G:
    def __init__(self, name):
        self.name = name

class U:
    def __init__(self, name, groups):
        self.name, self.groups = name, [G(g) for g in groups]

feed = HubdeskAnnouncements(f"http://127.0.0.1:{srv.server_port}/oauth/announcements", "jupyterhub", "s3cret",
                            hubdesk_url="https://desk.example", every=3600)
print(json.dumps({"case": "before", "html": feed.for_user(U("ada", ["students", "cohort-blue"]))}))
feed.refresh()
for name, groups in (("ada", ["students", "cohort-blue"]), ("bob", ["students", "cohort-green"]),
                     ("grace", ["students", "cohort-blue"])):
    print(json.dumps({"case": name, "html": feed.for_user(U(name, groups))}))
print(json.dumps({"case": "anonymous", "html": feed.for_user(None)}))
print(json.dumps({"case": "seen", "seen": seen}))
srv.shutdown()
srv.server_close()
try:
    feed.refresh()
    print(json.dumps({"case": "down", "error": None}))
except Exception as e:
    print(json.dumps({"case": "down", "error": type(e).__name__,
                      "html": feed.for_user(U("ada", ["students", "cohort-blue"]))}))
