// A callhook receiver in JavaScript (Node.js): answers the challenge, checks the receiver
// secret, verifies each delivery with the official Standard Webhooks library and handles each
// delivery once.
//
//   npm install standardwebhooks
//   CALLHOOK_SIGNING_SECRET=whsec_... RECEIVER_SECRET=... node receiver.js [PORT]
const http = require("node:http");
const crypto = require("node:crypto");
const { Webhook } = require("standardwebhooks");

// The integration's signing secret (shown when it is created or rotated). During a rotation
// deliveries carry both signatures, so a receiver on the old secret or the new one verifies.
const webhook = new Webhook(process.env.CALLHOOK_SIGNING_SECRET);
// The integration's `secret`, sent as `Authorization: Bearer <secret>` (also on the challenge).
const bearer = process.env.RECEIVER_SECRET;
// webhook-id is the delivery's id, the same on every retry: keep it in your database.
const seen = new Set();

function handle(eventType, payload) {
  console.log(JSON.stringify({ type: eventType, payload }));
}

function sameSecret(given, expected) {
  const a = Buffer.from(given), b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks); // verify the bytes as received, not a re-serialisation
    const answer = (status, text = "") =>
      res.writeHead(status, { "content-type": "text/plain" }).end(text);
    if (bearer && !sameSecret(req.headers.authorization || "", `Bearer ${bearer}`)) {
      return answer(401);
    }
    const eventType = req.headers["callhook-event-type"];
    if (eventType === "challenge") { // on saving: echo the token as text/plain
      return answer(200, JSON.parse(body).challenge);
    }
    let payload;
    try {
      payload = webhook.verify(body, req.headers);
    } catch (e) {
      return answer(400);
    }
    const deliveryId = req.headers["webhook-id"];
    if (!seen.has(deliveryId)) {
      seen.add(deliveryId);
      handle(eventType, payload);
    }
    answer(204); // any 2xx within the timeout is success
  });
});

server.listen(Number(process.argv[2] || 9000), "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});
