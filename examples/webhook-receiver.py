#!/usr/bin/env python3
"""A webhook receiver to try `ticket-webhook` against before pointing it at a real PSA
(docs/AUTOMATION.md, "Escalation to a PSA"). It checks each call's HMAC-SHA256 signature,
keeps tickets in memory, answers an `Idempotency-Key` it has seen with the same answer (as the
connector expects of its receiver), and prints one line per call. A test double, not a PSA.

    WARDEN_HMAC_KEY=the-shared-secret python3 examples/webhook-receiver.py 127.0.0.1 8088

The agent's `[tickets.config]` for it: `url = "http://127.0.0.1:8088/hooks/warden"`,
`respond-by-pointer = "/sla/respond_by"`, `resolve-by-pointer = "/sla/resolve_by"`.
"""

import datetime
import hashlib
import hmac
import http.server
import json
import os
import sys

KEY = os.environ.get("WARDEN_HMAC_KEY", "").encode()
TICKETS = {}  # id -> {"ref", "summary", "notes", "status"}
ANSWERS = {}  # Idempotency-Key -> the answer first given


def due(hours):
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours)
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        expected = "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(self.headers.get("X-Warden-Signature", ""), expected):
            return self.answer(401, {"error": "bad signature"}, "refused: bad signature")
        key = self.headers.get("Idempotency-Key", "")
        if key in ANSWERS:
            return self.answer(200, ANSWERS[key], f"replayed {key}")
        try:
            call = json.loads(body)
        except ValueError:
            return self.answer(400, {"error": "not JSON"}, "refused: not JSON")
        event = call.get("event")
        if event == "open":
            ticket_id = f"WH-{1000 + len(TICKETS) + 1}"
            TICKETS[ticket_id] = {"ref": call.get("incident", {}).get("external_ref"),
                                  "summary": call.get("summary"), "notes": [], "status": "new"}
            answer = {"id": ticket_id, "sla": {"respond_by": due(1), "resolve_by": due(8)}}
            line = f"open {ticket_id} {call.get('summary')!r}"
        elif event in ("note", "close") and call.get("ticket_id") in TICKETS:
            ticket = TICKETS[call["ticket_id"]]
            ticket["notes"].append(call.get("text"))
            if event == "close":
                ticket["status"] = "closed"
            answer = {"id": call["ticket_id"]}
            first = (call.get("text") or "").splitlines()[:1]
            line = f"{event} {call['ticket_id']} {first[0] if first else ''!r}"
        else:
            return self.answer(404, {"error": "no such ticket or event"}, f"refused: {event}")
        ANSWERS[key] = answer
        self.answer(200, answer, line)

    def answer(self, status, payload, line):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        print(f"{status} {line}", flush=True)

    def log_message(self, *args):
        pass  # one line per call, printed by answer()


if __name__ == "__main__":
    if not KEY:
        sys.exit("set WARDEN_HMAC_KEY to the key of the agent's secrets file")
    host, port = (sys.argv[1], int(sys.argv[2])) if len(sys.argv) == 3 else ("127.0.0.1", 8088)
    http.server.HTTPServer((host, port), Receiver).serve_forever()
