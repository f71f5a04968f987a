"""Run inside the hub image (dockerspawner is there) by tests/e2e/test_spawner_profile.py:
HubdeskSwarmSpawner._apply_profile against a stand-in for hubdesk's /oauth/profile on loopback.
Prints one JSON line per case."""
import asyncio, base64, json, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
sys.path.insert(0, "/x")
from hubdesk_spawner import HubdeskSwarmSpawner

EXPECTED = "Basic " + base64.b64encode(b"jupyterhub:s3cret").decode()
seen = []

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        seen.append((self.path, self.headers.get("Authorization")))
        ok = self.headers.get("Authorization") == EXPECTED
        if ok and self.path.endswith("/grace"):  # the camp is paused for students
            body = json.dumps({"error": "camp_paused",
                               "error_description": "The camp is paused: lunch until 13:30."}).encode()
            self.send_response(423)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
            return
        body = json.dumps({"cohort": "Morning", "mem_guarantee": 256 << 20, "mem_limit": 512 << 20,
                           "cpu_limit": 0.5} if ok else {"error": "invalid_client"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

srv = HTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()

class U:
    name = "ada lovelace"

s = HubdeskSwarmSpawner(user=U())
s.mem_limit, s.mem_guarantee, s.cpu_limit = 2 << 30, 2 << 30, 2.0
s.profile_url = f"http://127.0.0.1:{srv.server_port}/oauth/profile/"
s.profile_client_id, s.profile_client_secret = "jupyterhub", "s3cret"
asyncio.run(s._apply_profile())
print(json.dumps({"case": "profile", "limits": [s.mem_limit, s.mem_guarantee, s.cpu_limit], "seen": seen}))
s.profile_client_secret = "wrong"
asyncio.run(s._apply_profile())
print(json.dumps({"case": "refused", "limits": [s.mem_limit, s.mem_guarantee, s.cpu_limit]}))
s.profile_client_secret = "s3cret"
asyncio.run(s._apply_profile())
print(json.dumps({"case": "profile again", "limits": [s.mem_limit, s.mem_guarantee, s.cpu_limit]}))
class G:
    name = "grace"

p = HubdeskSwarmSpawner(user=G())
p.profile_url, p.profile_client_id, p.profile_client_secret = s.profile_url, "jupyterhub", "s3cret"
try:
    asyncio.run(p._apply_profile())
    print(json.dumps({"case": "paused", "refused": None}))
except Exception as e:  # the start is refused with hubdesk's words
    print(json.dumps({"case": "paused", "refused": [type(e).__name__, getattr(e, "status_code", None),
                                                    getattr(e, "reason", None)]}))
srv.shutdown()
srv.server_close()
asyncio.run(s._apply_profile())
print(json.dumps({"case": "down", "limits": [s.mem_limit, s.mem_guarantee, s.cpu_limit]}))
