#!/usr/bin/env python3
"""`tarjama serve` under load: correctness with many clients, and throughput against the
same engine in-process. Starts and stops every process itself (servers on 127.0.0.1 only,
stopped with SIGTERM in a `finally`, killed if they do not stop, and sent SIGTERM by Linux
if the script itself is killed); stdlib only.

Part 1, correctness under load (`--phases correctness`):

1. `tarjama serve --parallel P` (default queue 64). A reference pass: each of the N FLORES
   devtest sentences (`--first-line`, `--sentences`) is sent once, one request at a time,
   as a chat request asking for its translation (fixed system message, the sentence as
   the user's message, temperature 0, `--max-tokens`).
2. `--clients` threads, each with its own keep-alive connection, send the sentences again,
   every sentence `--repeats` times in all (half streamed, half not, shuffled with
   `--seed`). A request is answered (200) or refused with 503 + Retry-After, and then the
   client waits Retry-After seconds and sends it again (refusals are counted). At the end
   every answer must equal the reference answer of its sentence (greedy decoding gives
   the same tokens whatever runs beside it, so any difference means answers lost or mixed
   up between clients), and no request may be left unanswered.
3. The same with a second server started with `--queue Q` (`--small-queue`, default 8),
   so that 32 clients really are refused; its answers are checked against the first
   server's references (so also across two processes).

The clients' counts are checked against the server's `/metrics`
(`tarjama:generation_tokens_total`, `tarjama:requests_refused_total`).

Part 2, throughput side by side (`--phases throughput`), `--runs` times, in turn:

(a) in-process: `tarjama translate --lines --parallel P --model M --no-cache --quiet --json`
    on a file of the N sentences;
(b) through the server: a fresh `tarjama serve --parallel P`, then the same command with
    `--endpoint http://127.0.0.1:PORT/v1` (P requests in flight); its output must be
    byte-identical to (a)'s;
(c) the script's own P client threads against the same server, each sentence once, not
    streamed (the prompt of part 1, not `translate`'s, and `--max-tokens`).

Generated tokens: (b) and (c) from the server (`/metrics` before and after, and the
`usage` of (c)'s answers); `translate --lines --json` does not report the engine's tokens,
so (a) is given (b)'s count, which holds when the two outputs are identical (checked;
the table says so when they are not). Seconds: `translate`'s own `seconds` for (a) and
(b); for (a) they include loading the model, so the load time the server took in the
same run (from its `listening` line to its `ready` line) is taken off, and the ratio
server / in-process is (b) / (a with its load off). Since that load time is an estimate
of (a)'s, the ratio with one real load in each is printed too: (b) + the server's load
against (a) as measured. (c): from the first request to the last answer. The server's
overhead per request is the `overhead` of the `Server-Timing` header of every answer of
(c) (the server's own time: the whole request less the time inside the engine);
"client-side" is the script's wall time per request less the engine's time (HTTP on
loopback and Python included). Medians over the runs. The binary's SHA-256 is recorded
at the start and the end (a warning says when it was rebuilt meanwhile).

Prints a table and writes everything to `--json`; exits 1 if any check failed. With the
defaults the 0.5B model takes about 4.5 minutes on a quiet 2-core machine (15 on one
busy with other work); the 1.5B with `--sentences 24` 12 minutes on a busy one.

    cargo build --release -p tarjama-cli
    python3 scripts/bench_serve.py --model qwen2.5-coder-0.5b-instruct --sentences 64 \\
        --clients 32 --binary target/release/tarjama --json serve-0.5b.json

Options: --model, --binary, --sentences N (64), --first-line L (501: held-out lines),
--clients C (32), --repeats R (2), --parallel P (8), --small-queue Q (8), --max-tokens T
(96), --runs K (3), --phases correctness,throughput, --seed S, --request-timeout SECS
(600: a request not answered by then counts as unanswered), --json FILE, --keep DIR
(keep the input and output files).
"""

import argparse
import ctypes
import ctypes.util
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLORES = ROOT / "tests" / "data" / "flores200" / "arb_Arab.devtest"
SYSTEM = "Translate the user's Arabic into English. Answer with the translation only."
HOST = "127.0.0.1"


# ---------------------------------------------------------------------------------------
# The server process

try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def die_with_parent():
    """In the child: SIGTERM when the script dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so that no server outlives it."""
    if _LIBC is not None and sys.platform.startswith("linux"):
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG



class Server:
    """`tarjama serve` on a free port of 127.0.0.1; a context manager that always stops it."""

    def __init__(self, binary, model, parallel, queue=None, load_timeout=600):
        self.cmd = [str(binary), "serve", "--model", model, "--host", HOST, "--port", "0",
                    "--parallel", str(parallel)]
        if queue is not None:
            self.cmd += ["--queue", str(queue)]
        self.load_timeout = load_timeout
        self.proc = None
        self.port = None
        self.lines = []
        self.listening_at = None
        self.ready_at = None
        self.exit_code = None
        self._ready = threading.Event()
        self._reader = None

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            now = time.monotonic()
            self.lines.append(line)
            if len(self.lines) > 400:
                del self.lines[:200]
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self.listening_at = now
            if "tarjama serve: ready:" in line:
                self.ready_at = now
                self._ready.set()
        self._ready.set()  # the process ended: wake the waiter

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=die_with_parent)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(self.load_timeout) or self.ready_at is None:
            raise RuntimeError("the server did not become ready:\n" + "\n".join(self.lines[-20:]))
        status, body = http_get(self.port, "/health")
        if status != 200:
            raise RuntimeError(f"/health answered {status} after 'ready': {body[:200]!r}")
        status, body = http_get(self.port, "/v1/models")
        self.model = json.loads(body)["data"][0]["id"]
        return self

    @property
    def load_seconds(self):
        return self.ready_at - self.listening_at

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.exit_code = self.proc.returncode
            return self.exit_code
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_code = "killed after 60 s"
        if self._reader is not None:
            self._reader.join(5)
        return self.exit_code

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False


# ---------------------------------------------------------------------------------------
# HTTP


def http_get(port, path):
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def metrics(port):
    """The counters and histogram sums of /metrics, by name (labels kept in the name)."""
    status, text = http_get(port, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def delta(after, before, name):
    return after.get(name, 0.0) - before.get(name, 0.0)


def parse_server_timing(value):
    out = {}
    for part in (value or "").split(","):
        m = re.match(r"\s*([\w-]+);dur=([0-9.]+)", part)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def chat_body(model, sentence, max_tokens, stream):
    return json.dumps({
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": sentence}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": stream,
    }).encode("utf-8")


def chat(conn, model, sentence, max_tokens, stream):
    """One chat request on `conn`. Returns a dict: status, text, tokens, retry_after, code,
    overhead_ms and engine_ms (non-streamed), seconds (the client's wall time)."""
    start = time.monotonic()
    conn.request("POST", "/v1/chat/completions", body=chat_body(model, sentence, max_tokens, stream),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = {"status": resp.status, "stream": stream}
    if resp.status != 200 or not stream:
        body = resp.read()
        out["seconds"] = time.monotonic() - start
        try:
            data = json.loads(body)
        except ValueError:
            data = {"raw": body[:300].decode("utf-8", "replace")}
        if resp.status == 200:
            out["text"] = data["choices"][0]["message"]["content"]
            out["tokens"] = data["usage"]["completion_tokens"]
            timing = parse_server_timing(resp.getheader("Server-Timing"))
            out["overhead_ms"] = timing.get("overhead")
            out["engine_ms"] = timing.get("engine")
        else:
            err = data.get("error") if isinstance(data, dict) else None
            out["code"] = err.get("code") if isinstance(err, dict) else None
            out["message"] = (err.get("message") if isinstance(err, dict) else str(data))[:300]
            ra = resp.getheader("Retry-After")
            out["retry_after"] = float(ra) if ra is not None else None
        return out
    # Server-sent events: `data: {chunk}` lines, then `data: [DONE]`.
    text, tokens, error, done = [], None, None, False
    for raw in resp:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            continue
        chunk = json.loads(payload)
        if "error" in chunk:
            error = chunk["error"]
            continue
        delta_ = chunk["choices"][0].get("delta", {})
        if delta_.get("content"):
            text.append(delta_["content"])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
    resp.read()
    out["seconds"] = time.monotonic() - start
    if error is not None or not done:
        out["status"] = "stream-error"
        out["message"] = json.dumps(error)[:300] if error else "the stream ended without [DONE]"
        return out
    out["text"] = "".join(text)
    out["tokens"] = tokens
    return out


class Client:
    """One client: its own keep-alive connection; retries a refused request after
    Retry-After; reconnects (and counts it) when the connection fails."""

    def __init__(self, port, model, max_tokens, request_timeout):
        self.port, self.model, self.max_tokens = port, model, max_tokens
        self.request_timeout = request_timeout
        self.conn = None
        self.refused = 0
        self.bad_refusals = []
        self.connection_errors = []

    def _connect(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.request_timeout)
        return self.conn

    def ask(self, sentence, stream):
        """Until answered, or a non-retryable answer, or the time is up: the last answer."""
        deadline = time.monotonic() + self.request_timeout
        while True:
            try:
                r = chat(self._connect(), self.model, sentence, self.max_tokens, stream)
            except (OSError, http.client.HTTPException) as e:
                self.connection_errors.append(repr(e))
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if time.monotonic() > deadline:
                    return {"status": "unanswered", "message": repr(e)}
                time.sleep(0.5)
                continue
            if r["status"] == 503:
                self.refused += 1
                if r.get("code") != "queue_full" or r.get("retry_after") is None:
                    self.bad_refusals.append(r)
                wait = r.get("retry_after") or 1.0
                if time.monotonic() + wait > deadline:
                    return {"status": "unanswered", "message": "refused until the deadline"}
                time.sleep(wait)
                continue
            return r

    def close(self):
        if self.conn is not None:
            self.conn.close()


def run_clients(port, model, jobs_per_client, max_tokens, request_timeout, sentences):
    """Runs one thread per job list; returns (results [(job, answer)], clients, wall)."""
    results, lock = [], threading.Lock()
    clients = [Client(port, model, max_tokens, request_timeout) for _ in jobs_per_client]
    barrier = threading.Barrier(len(clients) + 1)

    def work(client, jobs):
        barrier.wait()
        try:
            for job in jobs:
                idx, stream = job
                try:
                    answer = client.ask(sentences[idx], stream)
                except Exception as e:  # a malformed answer: recorded, not fatal
                    answer = {"status": "client-error", "message": repr(e)}
                with lock:
                    results.append((job, answer))
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(c, j), daemon=True)
               for c, j in zip(clients, jobs_per_client)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    return results, clients, time.monotonic() - start


def pct(values, q):
    """The q-quantile (0-1) of values, nearest rank."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


# ---------------------------------------------------------------------------------------
# Part 1: correctness


def reference_pass(server, sentences, args):
    client = Client(server.port, server.model, args.max_tokens, args.request_timeout)
    refs, tokens, start = [], 0, time.monotonic()
    try:
        for s in sentences:
            r = client.ask(s, False)
            if r["status"] != 200:
                raise RuntimeError(f"reference request failed: {r}")
            refs.append(r["text"])
            tokens += r["tokens"]
    finally:
        client.close()
    wall = time.monotonic() - start
    return refs, {"requests": len(sentences), "generated_tokens": tokens, "seconds": wall,
                  "tokens_per_second": tokens / wall}


def load_run(server, sentences, refs, args, label):
    """args.clients threads, every sentence args.repeats times, streamed and not."""
    rng = random.Random(args.seed)
    jobs = [(i, (i + k) % 2 == 1) for i in range(len(sentences)) for k in range(args.repeats)]
    rng.shuffle(jobs)
    per_client = [jobs[c::args.clients] for c in range(args.clients)]
    before = metrics(server.port)
    results, clients, wall = run_clients(server.port, server.model, per_client, args.max_tokens,
                                         args.request_timeout, sentences)
    after = metrics(server.port)
    answered = [(j, a) for j, a in results if a["status"] == 200]
    mismatches = [{"sentence": j[0], "line": args.first_line + j[0], "stream": j[1],
                   "got": a["text"], "want": refs[j[0]]}
                  for j, a in answered if a["text"] != refs[j[0]]]
    failed = [{"sentence": j[0], "stream": j[1], "answer": a} for j, a in results if a["status"] != 200]
    usage_tokens = sum(a["tokens"] or 0 for _, a in answered)
    overhead = [a["overhead_ms"] for _, a in answered if a.get("overhead_ms") is not None]
    out = {
        "label": label,
        "queue": server.cmd[server.cmd.index("--queue") + 1] if "--queue" in server.cmd else 64,
        "clients": args.clients,
        "requests": len(jobs),
        "streamed": sum(1 for j in jobs if j[1]),
        "answered": len(answered),
        "matching_reference": len(answered) - len(mismatches),
        "mismatches": mismatches,
        "unanswered_or_failed": failed,
        "missing": len(jobs) - len(results),
        "refused_503": sum(c.refused for c in clients),
        "refusals_without_retry_after": sum(len(c.bad_refusals) for c in clients),
        "connection_errors": sum(len(c.connection_errors) for c in clients),
        "connection_error_samples": [e for c in clients for e in c.connection_errors][:5],
        "server_refused_total": delta(after, before, "tarjama:requests_refused_total"),
        "usage_generated_tokens": usage_tokens,
        "server_generated_tokens": delta(after, before, "tarjama:generation_tokens_total"),
        "seconds": wall,
        "tokens_per_second": usage_tokens / wall,
        "overhead_ms_p50": pct(overhead, 0.5),
        "overhead_ms_p95": pct(overhead, 0.95),
        "non_streamed_timed": len(overhead),
    }
    out["ok"] = (not mismatches and not failed and out["missing"] == 0
                 and out["answered"] == len(jobs)
                 and out["refusals_without_retry_after"] == 0
                 and out["server_refused_total"] == out["refused_503"]
                 and out["server_generated_tokens"] == usage_tokens)
    return out


def correctness(binary, model, sentences, args, report):
    with Server(binary, model, args.parallel) as server:
        print(f"[correctness] server ready on port {server.port} ({server.load_seconds:.1f} s to load); "
              f"reference pass, {len(sentences)} requests one at a time", flush=True)
        refs, ref_stats = reference_pass(server, sentences, args)
        report["reference"] = ref_stats
        print(f"[correctness] reference: {ref_stats['generated_tokens']} tokens in "
              f"{ref_stats['seconds']:.1f} s; {args.clients} clients, queue 64", flush=True)
        big = load_run(server, sentences, refs, args, "queue 64")
        big["server_exit_code"] = None
        report["load_runs"] = [big]
        print_load(big, args.first_line)
    big["server_exit_code"] = server.exit_code
    with Server(binary, model, args.parallel, queue=args.small_queue) as server:
        print(f"[correctness] {args.clients} clients, queue {args.small_queue}", flush=True)
        small = load_run(server, sentences, refs, args, f"queue {args.small_queue}")
        report["load_runs"].append(small)
        print_load(small, args.first_line)
    small["server_exit_code"] = server.exit_code
    report["references"] = refs
    return big["ok"] and small["ok"] and big["server_exit_code"] == 0 and small["server_exit_code"] == 0


def print_load(r, first_line):
    print(f"  {r['label']}: {r['answered']}/{r['requests']} answered "
          f"({r['streamed']} streamed), {r['matching_reference']} equal to the reference, "
          f"{len(r['mismatches'])} different, {len(r['unanswered_or_failed'])} failed, "
          f"{r['refused_503']} refusals (server counted {r['server_refused_total']:.0f}), "
          f"{r['connection_errors']} connection errors, {r['seconds']:.1f} s, "
          f"tokens {r['usage_generated_tokens']} (server {r['server_generated_tokens']:.0f}); "
          f"{'OK' if r['ok'] else 'FAILED'}", flush=True)
    for m in r["mismatches"][:3]:
        print(f"    line {m['line']} stream={m['stream']}: got {m['got'][:80]!r} want {m['want'][:80]!r}")
    for f in r["unanswered_or_failed"][:3]:
        print(f"    line {first_line + f['sentence']}: {f['answer']}")


# ---------------------------------------------------------------------------------------
# Part 2: throughput


def run_translate(cmd, timeout):
    """Runs `tarjama translate ... --json -o FILE`; returns (summary, wall seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=die_with_parent)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{err.decode()[-2000:]}")
    return json.loads(out), wall


def raw_clients(server, sentences, args):
    """args.parallel threads pulling the sentences from one list, each once, not streamed."""
    pending = list(range(len(sentences)))
    lock = threading.Lock()
    answers = {}
    clients = [Client(server.port, server.model, args.max_tokens, args.request_timeout)
               for _ in range(args.parallel)]
    barrier = threading.Barrier(len(clients) + 1)

    def work(client):
        barrier.wait()
        try:
            while True:
                with lock:
                    if not pending:
                        return
                    idx = pending.pop(0)
                answers[idx] = client.ask(sentences[idx], False)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    before = metrics(server.port)
    barrier.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    after = metrics(server.port)
    ok = [a for a in answers.values() if a["status"] == 200]
    tokens = sum(a["tokens"] for a in ok)
    overhead = [a["overhead_ms"] for a in ok if a.get("overhead_ms") is not None]
    client_side = [a["seconds"] * 1e3 - a["engine_ms"] for a in ok if a.get("engine_ms") is not None]
    return {
        "requests": len(sentences),
        "answered": len(ok),
        "generated_tokens": tokens,
        "server_generated_tokens": delta(after, before, "tarjama:generation_tokens_total"),
        "seconds": wall,
        "tokens_per_second": tokens / wall,
        "overhead_ms": overhead,
        "engine_ms": [a["engine_ms"] for a in ok if a.get("engine_ms") is not None],
        "client_side_ms": client_side,
        "metrics_overhead_seconds_sum": delta(after, before, "tarjama:server_overhead_seconds_sum"),
        "metrics_overhead_count": delta(after, before, "tarjama:server_overhead_seconds_count"),
    }


def throughput(binary, model, sentences, src, workdir, args, report):
    runs = []
    for k in range(args.runs):
        run = {"run": k + 1, "loadavg_before": os.getloadavg()}
        out_a = workdir / f"run{k + 1}-inprocess.en"
        out_b = workdir / f"run{k + 1}-server.en"
        cmd_a = [str(binary), "translate", "--lines", "--parallel", str(args.parallel), "--model", model,
                 "--no-cache", "--quiet", "--json", str(src), "-o", str(out_a)]
        summary_a, wall_a = run_translate(cmd_a, args.request_timeout * 4)
        run["a"] = {"command": cmd_a, "seconds": summary_a["seconds"], "process_wall": wall_a,
                    "summary": summary_a}
        print(f"[throughput {k + 1}/{args.runs}] (a) in-process: {summary_a['seconds']:.1f} s", flush=True)
        with Server(binary, model, args.parallel) as server:
            run["server_load_seconds"] = server.load_seconds
            endpoint = f"http://{HOST}:{server.port}/v1"
            cmd_b = [str(binary), "translate", "--lines", "--endpoint", endpoint, "--model", server.model,
                     "--parallel", str(args.parallel), "--no-cache", "--quiet", "--json", str(src),
                     "-o", str(out_b)]
            before = metrics(server.port)
            summary_b, wall_b = run_translate(cmd_b, args.request_timeout * 4)
            after = metrics(server.port)
            tokens_b = delta(after, before, "tarjama:generation_tokens_total")
            run["b"] = {"command": cmd_b, "seconds": summary_b["seconds"], "process_wall": wall_b,
                        "generated_tokens": tokens_b, "summary": summary_b,
                        "server_requests": delta(after, before,
                                                 'tarjama:http_requests_total{route="/v1/chat/completions",status="200"}')}
            print(f"[throughput {k + 1}/{args.runs}] (b) via server: {summary_b['seconds']:.1f} s, "
                  f"{tokens_b:.0f} tokens", flush=True)
            run["c"] = raw_clients(server, sentences, args)
            print(f"[throughput {k + 1}/{args.runs}] (c) raw clients: {run['c']['seconds']:.1f} s, "
                  f"{run['c']['generated_tokens']} tokens", flush=True)
        run["server_exit_code"] = server.exit_code
        identical = out_a.read_bytes() == out_b.read_bytes()
        a_lines = out_a.read_text().splitlines()
        b_lines = out_b.read_text().splitlines()
        run["identical_outputs"] = identical
        run["differing_lines"] = [args.first_line + i for i, (x, y) in enumerate(zip(a_lines, b_lines)) if x != y]
        load = run["server_load_seconds"]
        tokens = tokens_b
        run["tok_s"] = {
            "a_raw": tokens / summary_a["seconds"],
            "a_load_off": tokens / max(summary_a["seconds"] - load, 1e-9),
            "b": tokens / summary_b["seconds"],
            "c": run["c"]["tokens_per_second"],
        }
        # Both with one load: (a) loads inside its `seconds`; (b) gets the server's load.
        run["tok_s"]["b_with_load"] = tokens / (summary_b["seconds"] + load)
        run["ratio"] = run["tok_s"]["b"] / run["tok_s"]["a_load_off"]
        run["ratio_with_load"] = run["tok_s"]["b_with_load"] / run["tok_s"]["a_raw"]
        run["loadavg_after"] = os.getloadavg()
        print(f"[throughput {k + 1}/{args.runs}] tok/s a {run['tok_s']['a_load_off']:.1f} (raw "
              f"{run['tok_s']['a_raw']:.1f}), b {run['tok_s']['b']:.1f}, c {run['tok_s']['c']:.1f}; "
              f"b/a {run['ratio']:.3f} ({run['ratio_with_load']:.3f} with one load each); "
              f"outputs identical: {identical}; load average {run['loadavg_after'][0]:.1f}", flush=True)
        runs.append(run)
    report["throughput_runs"] = runs
    med = lambda f: statistics.median(f(r) for r in runs)
    overhead = [x for r in runs for x in r["c"]["overhead_ms"]]
    client_side = [x for r in runs for x in r["c"]["client_side_ms"]]
    report["throughput"] = {
        "tok_s_a_raw": med(lambda r: r["tok_s"]["a_raw"]),
        "tok_s_a_load_off": med(lambda r: r["tok_s"]["a_load_off"]),
        "tok_s_b": med(lambda r: r["tok_s"]["b"]),
        "tok_s_c": med(lambda r: r["tok_s"]["c"]),
        "ratio_b_over_a": med(lambda r: r["ratio"]),
        "ratio_b_over_a_with_load": med(lambda r: r["ratio_with_load"]),
        "tok_s_b_with_load": med(lambda r: r["tok_s"]["b_with_load"]),
        "seconds_a": med(lambda r: r["a"]["seconds"]),
        "seconds_b": med(lambda r: r["b"]["seconds"]),
        "seconds_c": med(lambda r: r["c"]["seconds"]),
        "load_seconds": med(lambda r: r["server_load_seconds"]),
        "generated_tokens_b": med(lambda r: r["b"]["generated_tokens"]),
        "generated_tokens_c": med(lambda r: r["c"]["generated_tokens"]),
        "all_outputs_identical": all(r["identical_outputs"] for r in runs),
        "overhead_ms_p50": pct(overhead, 0.5),
        "overhead_ms_p95": pct(overhead, 0.95),
        "overhead_ms_max": max(overhead) if overhead else None,
        "overhead_samples": len(overhead),
        "client_side_ms_p50": pct(client_side, 0.5),
        "client_side_ms_p95": pct(client_side, 0.95),
        "engine_ms_p50": pct([x for r in runs for x in r["c"]["engine_ms"]], 0.5),
        "server_exit_codes": [r["server_exit_code"] for r in runs],
    }
    return report["throughput"]


def print_throughput(t, args, n):
    same = "identical" if t["all_outputs_identical"] else "NOT identical: (a)'s tokens are (b)'s count"
    rows = [
        ("(a) in-process, `translate --lines`", t["seconds_a"], t["tok_s_a_raw"],
         f"{t['tok_s_a_load_off']:.1f} with the {t['load_seconds']:.1f} s load off"),
        ("(b) server, `translate --lines --endpoint`", t["seconds_b"], t["tok_s_b"],
         f"**{t['ratio_b_over_a']:.2f}x** (a) with its load off; {t['ratio_b_over_a_with_load']:.2f}x "
         f"with one load in each ({t['tok_s_b_with_load']:.1f} tok/s)"),
        (f"(c) server, {args.parallel} script clients", t["seconds_c"], t["tok_s_c"],
         "other prompt; max_tokens " + str(args.max_tokens)),
    ]
    print()
    print(f"{n} sentences, --parallel {args.parallel}, median of {args.runs}; outputs of (a) and (b) {same}")
    print()
    print("| run | seconds | generated tok/s | note |")
    print("|---|---:|---:|---|")
    for name, secs, tps, note in rows:
        print(f"| {name} | {secs:.1f} | {tps:.1f} | {note} |")
    print()
    print(f"server overhead per request (Server-Timing, {t['overhead_samples']} answers of (c)): "
          f"p50 {t['overhead_ms_p50']:.3f} ms, p95 {t['overhead_ms_p95']:.3f} ms, max {t['overhead_ms_max']:.3f} ms; "
          f"client-side (wall - engine): p50 {t['client_side_ms_p50']:.2f} ms, p95 {t['client_side_ms_p95']:.2f} ms")
    print(f"ratio server / in-process: {t['ratio_b_over_a']:.3f} (target >= 0.9: "
          f"{'met' if t['ratio_b_over_a'] >= 0.9 else 'NOT met'})", flush=True)


# ---------------------------------------------------------------------------------------


def binary_info(binary):
    """What was measured: the binary's size, time and SHA-256 (it can be rebuilt under a
    long run; each run's commands name the same path)."""
    h = hashlib.sha256()
    with open(binary, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    st = binary.stat()
    return {"path": str(binary), "bytes": st.st_size,
            "mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.st_mtime)), "sha256": h.hexdigest()}


def machine():
    name = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": name, "cores": os.cpu_count()}


def stop_on_sigterm(*_):
    """SIGTERM to the script unwinds like Ctrl-C, so every `finally` stops its server."""
    raise KeyboardInterrupt("SIGTERM")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "tarjama"))
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--first-line", type=int, default=501, help="first FLORES devtest line (1-based)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2, help="requests per sentence in the load runs")
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--small-queue", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--phases", default="correctness,throughput")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--request-timeout", type=float, default=600.0)
    p.add_argument("--json", help="write the report here")
    p.add_argument("--keep", help="keep the input and outputs in this folder")
    args = p.parse_args()
    phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    if not phases <= {"correctness", "throughput"}:
        p.error("--phases: correctness, throughput or both")
    binary = Path(args.binary)
    if not binary.is_file():
        p.error(f"--binary {binary}: no such file (cargo build --release -p tarjama-cli)")
    lines = FLORES.read_text(encoding="utf-8").splitlines()
    sentences = lines[args.first_line - 1: args.first_line - 1 + args.sentences]
    if len(sentences) < args.sentences:
        p.error(f"only {len(sentences)} lines from line {args.first_line}")

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": machine(),
        "binary": binary_info(binary),
        "argv": sys.argv,
        "args": vars(args),
        "loadavg_start": os.getloadavg(),
    }
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_serve."))
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "src.ar"
    src.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    ok = True
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        if "correctness" in phases:
            ok = correctness(binary, args.model, sentences, args, report) and ok
        if "throughput" in phases:
            t = throughput(binary, args.model, sentences, src, workdir, args, report)
            print_throughput(t, args, len(sentences))
            ok = ok and t["all_outputs_identical"] and all(c == 0 for c in t["server_exit_codes"])
    finally:
        report["loadavg_end"] = os.getloadavg()
        report["binary_end"] = binary_info(binary)
        report["ok"] = ok
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if "correctness" in phases:
        print()
        print("| load run | requests (streamed) | answered | equal to reference | refused 503 | unanswered | seconds | server exit |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in report["load_runs"]:
            print(f"| {r['clients']} clients, queue {r['queue']} | {r['requests']} ({r['streamed']}) | "
                  f"{r['answered']} | {r['matching_reference']} | {r['refused_503']} | "
                  f"{len(r['unanswered_or_failed']) + r['missing']} | {r['seconds']:.1f} | {r['server_exit_code']} |")
    if report["binary"]["sha256"] != report["binary_end"]["sha256"]:
        print(f"\nwarning: {binary} was rebuilt during the run ({report['binary']['mtime']} -> "
              f"{report['binary_end']['mtime']}): the runs may not all have used the same build")
    print(f"\n{'OK' if ok else 'FAILED'}; load average {report['loadavg_start']} -> {report['loadavg_end']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
