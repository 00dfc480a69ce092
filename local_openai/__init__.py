"""A local, offline stand-in for OpenAI's files / fine-tuning / models / chat completions / batches API.

Shaped like a moto service; a package of its own beside `fine_tuning`. It imports only
the pipeline's Dagster-free rules (`fine_tuning.core`), never Dagster or the definitions.

    options.py            BackendOptions: store, job and batch speed, auth key, latency, faults, body limit, clock
    exceptions.py         one exception class per OpenAI error (status, type, code, param)
    records.py            typed records with to_api(): file, job, event, checkpoint, model, completion, page
    store.py              the on-disk store (atomic, locked), typed tables over it, ids, pagination
    service.py            LocalOpenAI: the resources wired to one store (moto's backend)
    files.py              the files resource
    jobs/                 the fine-tuning jobs resource: requests, lifecycle, training data
    models.py             base models (from core.catalog) and fine-tuned models
    chat.py               chat completions
    batches/              the Batch API: input file checks, lifecycle, output and error files
    learner/              the small model that is trained: features, model, training, zero-shot, ...
    structured_outputs/   replies to response_format: schema check, validation, generation, replies
    http/                 framework-free HTTP: routes as data, thin handlers, parsing, middleware, Router
    server.py             the Router over real HTTP (bare ASGI app, uvicorn)
    transport.py          the Router in-process (an httpx2 transport) and `local_client`
    __main__.py           `python -m local_openai serve [...]`

It does not imitate GPT: see learner/ for what it learns.
"""
