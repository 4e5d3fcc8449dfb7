"""A callhook receiver in Python: answers the challenge, checks the receiver secret, verifies
each delivery with the official Standard Webhooks library and handles each delivery once.

    pip install standardwebhooks
    CALLHOOK_SIGNING_SECRET=whsec_... RECEIVER_SECRET=... python3 receiver.py [PORT]
"""
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# The integration's signing secret (shown when it is created or rotated). During a rotation
# deliveries carry both signatures, so a receiver on the old secret or the new one verifies.
webhook = Webhook(os.environ["CALLHOOK_SIGNING_SECRET"])
# The integration's `secret`, sent as `Authorization: Bearer <secret>` (also on the challenge).
bearer = os.environ.get("RECEIVER_SECRET")
# webhook-id is the delivery's id, the same on every retry: keep it in your database.
seen, seen_lock = set(), threading.Lock()


def handle(event_type, payload):
    print(json.dumps({"type": event_type, "payload": payload}), flush=True)


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: callhook reuses connections

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if bearer and not hmac.compare_digest(
            self.headers.get("authorization", "").encode(), f"Bearer {bearer}".encode()
        ):
            return self.answer(401)
        event_type = self.headers.get("callhook-event-type")
        if event_type == "challenge":  # on saving: echo the token as text/plain
            return self.answer(200, json.loads(body)["challenge"].encode(), "text/plain")
        try:
            payload = webhook.verify(body, dict(self.headers))
        except WebhookVerificationError:
            return self.answer(400)
        delivery_id = self.headers["webhook-id"]
        with seen_lock:  # requests come in on several threads
            if delivery_id not in seen:
                seen.add(delivery_id)
                handle(event_type, payload)
        self.answer(204)  # any 2xx within the timeout is success

    def answer(self, status, body=b"", content_type="text/plain"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9000), Receiver)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
