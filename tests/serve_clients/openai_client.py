"""The official `openai` Python client against `tarjama serve`.

    openai_client.py BASE_URL MODEL        # the server's key, if any, in $TARJAMA_TEST_KEY

Asks for one chat answer whole and the same one streamed (greedy, so both must read the
same), lists the models, and tries a wrong key and a model the server does not run.
Prints one JSON object of what the client saw; tests/serve.rs judges it. Only a failure
of the client itself (an exception not asked for) makes the script fail.
"""

import json
import os
import sys

import openai

MESSAGES = [
    {"role": "system", "content": "You translate Arabic news into English."},
    {"role": "user", "content": "Translate into English: قال الوزير إن الاجتماع كان مثمرا."},
]


def error(e):
    """What a test needs of an API error: its class, status and the server's code."""
    return {
        "class": type(e).__name__,
        "status": getattr(e, "status_code", None),
        "code": getattr(e, "code", None),
        "message": getattr(e, "message", str(e)),
    }


def main():
    base, model = sys.argv[1], sys.argv[2]
    key = os.environ.get("TARJAMA_TEST_KEY") or "no-key"
    # No retries: a test must see the server's first answer, not the client's patience.
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=300)
    settings = dict(model=model, messages=MESSAGES, temperature=0, max_tokens=32)

    plain = client.chat.completions.create(**settings)

    streamed, finish, chunks, usage = "", None, 0, None
    stream = client.chat.completions.create(
        **settings, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        chunks += 1
        for choice in chunk.choices:
            if choice.delta.content:
                streamed += choice.delta.content
            if choice.finish_reason:
                finish = choice.finish_reason
        if chunk.usage:
            usage = chunk.usage.model_dump()

    models = [m.model_dump() for m in client.models.list()]

    wrong = openai.OpenAI(base_url=base + "/v1", api_key="not-the-key", max_retries=0)
    try:
        wrong.chat.completions.create(**settings)
        wrong_key = None
    except openai.APIError as e:
        wrong_key = error(e)

    try:
        client.chat.completions.create(**{**settings, "model": "no-such-model"})
        unknown_model = None
    except openai.APIError as e:
        unknown_model = error(e)

    print(
        json.dumps(
            {
                "plain": plain.choices[0].message.content,
                "plain_finish": plain.choices[0].finish_reason,
                "plain_usage": plain.usage.model_dump() if plain.usage else None,
                "plain_model": plain.model,
                "streamed": streamed,
                "streamed_finish": finish,
                "streamed_usage": usage,
                "chunks": chunks,
                "models": models,
                "wrong_key": wrong_key,
                "unknown_model": unknown_model,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
