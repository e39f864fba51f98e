#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""A validating Zipkin collector double (no Zipkin server is installable here).

POST /api/v2/spans with Content-Type application/json and a JSON array: every span
is validated against the Span definition of openzipkin/zipkin-api's
zipkin2-api.yaml (tests/corpora/zipkin, swagger $refs resolved by jsonschema), plus
the id rules the schema's unanchored patterns leave out (exactly 16 or 32 lower-hex
trace id). Valid spans are appended, one JSON object a line, to --out and the answer
is 202; anything invalid is appended to --errors with the reason and answered 400.

  zipkin_recv.py --port-file F --out SPANS --errors ERRS [--slow]
  zipkin_recv.py --down         (exits at once: the test's collector is not there)

--slow accepts connections and reads requests but never answers. The port (0 in
--port picks a free one) is written to --port-file once listening.
"""
import argparse
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
API = os.path.join(HERE, '..', 'corpora', 'zipkin', 'zipkin2-api.yaml')
HEX_TRACE = re.compile(r'[a-f0-9]{16}|[a-f0-9]{32}')
HEX_SPAN = re.compile(r'[a-f0-9]{16}')


def span_validator():
    with open(API) as f:
        api = yaml.safe_load(f)
    schema = {'$ref': '#/definitions/Span', 'definitions': api['definitions']}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    return cls(schema, format_checker=jsonschema.FormatChecker())


VALIDATOR = span_validator()
LOCK = threading.Lock()


def span_errors(span):
    errs = [e.message for e in VALIDATOR.iter_errors(span)]
    if isinstance(span, dict):
        if not HEX_TRACE.fullmatch(str(span.get('traceId', ''))):
            errs.append('traceId is not 16 or 32 lower-hex')
        for k in ('id', 'parentId'):
            if k in span and not HEX_SPAN.fullmatch(str(span[k])):
                errs.append(f'{k} is not 16 lower-hex')
    return errs


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, text=''):
        body = text.encode()
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n)
        if self.server.slow:
            time.sleep(3600)
            return
        if self.path != '/api/v2/spans':
            return self.answer(404, 'POST /api/v2/spans\n')
        ctype = self.headers.get('Content-Type', '').split(';')[0].strip()
        bad = []
        spans = []
        if ctype != 'application/json':
            bad.append(f'Content-Type {ctype!r}, not application/json')
        else:
            try:
                spans = json.loads(body)
            except ValueError as e:
                bad.append(f'not JSON: {e}')
            if not bad and not isinstance(spans, list):
                bad.append('body is not a JSON array (ListOfSpans)')
        for s in spans if not bad else []:
            for e in span_errors(s):
                bad.append(f'{e}: {json.dumps(s)[:400]}')
        with LOCK:
            if bad:
                with open(self.server.errors, 'a') as f:
                    for b in bad:
                        f.write(b + '\n')
            else:
                with open(self.server.out, 'a') as f:
                    for s in spans:
                        f.write(json.dumps(s, sort_keys=True) + '\n')
        self.answer(400 if bad else 202, '\n'.join(bad))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file')
    ap.add_argument('--out', default='/dev/null')
    ap.add_argument('--errors', default='/dev/stderr')
    ap.add_argument('--slow', action='store_true')
    ap.add_argument('--down', action='store_true')
    a = ap.parse_args()
    if a.down:
        return 0
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    srv.slow, srv.out, srv.errors = a.slow, a.out, a.errors
    if a.port_file:
        tmp = a.port_file + '.tmp'
        with open(tmp, 'w') as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, a.port_file)
    srv.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
