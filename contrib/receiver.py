#!/usr/bin/env python3
"""A minimal local webhook receiver for trying callhook by hand.

Answers callhook's challenge (200 text/plain with the token), prints every delivery with its
headers, and verifies the Standard Webhooks signature when WEBHOOK_SECRET (whsec_...) is set.

    python3 contrib/receiver.py 9000
"""
import base64, hashlib, hmac, json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("WEBHOOK_SECRET", "")


def verify(headers, body):
    if not SECRET:
        return "not checked (set WEBHOOK_SECRET)"
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    ok = any(hmac.compare_digest(s, expected) for s in headers.get("webhook-signature", "").split())
    return "valid" if ok else "INVALID"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("callhook-event-type") == "challenge":
            token = json.loads(body)["challenge"].encode()
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(token)))
            self.end_headers()
            self.wfile.write(token)
            print("answered a challenge", flush=True)
            return
        print(f"--- {self.headers.get('callhook-event-type')} attempt {self.headers.get('callhook-attempt')}"
              f" id {self.headers.get('webhook-id')} signature {verify(self.headers, body)}")
        print(json.dumps(json.loads(body), indent=2), flush=True)
        self.send_response(204)
        self.end_headers()

    do_PUT = do_POST

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9000), Handler).serve_forever()
