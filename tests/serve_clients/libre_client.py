"""LibreTranslate's Python client (`libretranslatepy`) and plain HTTP against `tarjama serve`.

    libre_client.py BASE_URL        # the server's key in $TARJAMA_TEST_KEY

The client's own calls (languages, detect, translate with a source and with `auto`, a
wrong key), then what the client does not wrap, as LibreTranslate's API documents it:
`q` as an array, `format: html`, and `/translate_file` with a subtitle file followed by
`/download_file`. Prints one JSON object of what came back; tests/serve.rs judges it.
"""

import json
import os
import sys
import urllib.error
import urllib.request
import uuid

from libretranslatepy import LibreTranslateAPI

ARABIC = "قال الوزير إن الاجتماع كان مثمرا."
SECOND = "وأضاف أن المحادثات ستستمر غدا."
HTML = "<p>قال الوزير إن <b>الاجتماع</b> كان مثمرا.</p>"
SRT = (
    "1\n00:00:01,000 --> 00:00:03,500\n" + ARABIC + "\n\n"
    "2\n00:00:04,000 --> 00:00:06,000\n" + SECOND + "\n"
)
TIMEOUT = 300


def http_error(e):
    """An HTTP error as status, headers and body (JSON when it is)."""
    body = e.read().decode()
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return {"status": e.code, "content_type": e.headers.get("Content-Type"), "body": body}


def post_json(url, value):
    request = urllib.request.Request(
        url, data=json.dumps(value).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read().decode())


def post_file(url, fields, name, content):
    """A multipart form as browsers and LibreTranslate's page send it."""
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(
        url,
        data=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read().decode())


def main():
    base = sys.argv[1].rstrip("/")
    key = os.environ.get("TARJAMA_TEST_KEY") or None
    out = {}

    client = LibreTranslateAPI(base, key)
    out["languages"] = client.languages(timeout=TIMEOUT)
    out["detect"] = client.detect(ARABIC, timeout=TIMEOUT)
    out["translate"] = client.translate(ARABIC, "ar", "en", timeout=TIMEOUT)
    out["translate_auto"] = client.translate(ARABIC, "auto", "en", timeout=TIMEOUT)
    try:
        LibreTranslateAPI(base, "not-the-key").translate(ARABIC, "ar", "en", timeout=TIMEOUT)
        out["wrong_key"] = None
    except urllib.error.HTTPError as e:
        out["wrong_key"] = http_error(e)

    with_key = {"api_key": key} if key else {}
    out["array"] = post_json(
        base + "/translate",
        {"q": [ARABIC, SECOND], "source": "auto", "target": "en", **with_key},
    )
    out["html"] = post_json(
        base + "/translate",
        {"q": HTML, "source": "ar", "target": "en", "format": "html", **with_key},
    )

    out["srt_in"] = SRT
    kept = post_file(
        base + "/translate_file",
        {"source": "ar", "target": "en", **with_key},
        "news.srt",
        SRT.encode(),
    )
    out["translate_file"] = kept
    with urllib.request.urlopen(kept["translatedFileUrl"], timeout=TIMEOUT) as response:
        out["download"] = {
            "status": response.status,
            "disposition": response.headers.get("Content-Disposition"),
            "text": response.read().decode(),
        }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
