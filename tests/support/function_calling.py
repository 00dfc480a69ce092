"""A training file in the shape of OpenAI's function-calling fine-tuning cookbook.

Each line: a system message, a user request, the assistant's `tool_calls` (arguments as JSON
text), the top-level `tools` every example is given and `parallel_tool_calls`. Written here
(not copied) with a toy home-automation assistant: which function a request calls is learnable
from its words.
"""

from __future__ import annotations

import json
import random
from typing import Any

SYSTEM = {"role": "system", "content": "You control the house. Call exactly one function for each request."}
FUNCTIONS = {
    "set_lights": ("Turns lights on or off in a room.", {"room": {"type": "string"}, "on": {"type": "boolean"}}),
    "set_thermostat": ("Sets the temperature in degrees Celsius.", {"celsius": {"type": "number"}}),
    "lock_door": ("Locks a door of the house.", {"door": {"type": "string"}}),
    "play_music": ("Plays a playlist on the speakers.", {"playlist": {"type": "string"}}),
}
TOOLS = [
    {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": sorted(properties)},
    }}
    for name, (description, properties) in FUNCTIONS.items()
]
REQUESTS = {
    "set_lights": (["turn on the lamp in the", "switch off the lights of the", "make it bright in the"],
                   lambda rng: {"room": rng.choice(["kitchen", "hall", "attic"]), "on": rng.random() < 0.5}),
    "set_thermostat": (["it is too cold please warm up to", "set the heating to", "cool the house down to"],
                       lambda rng: {"celsius": rng.randint(16, 24)}),
    "lock_door": (["lock the", "secure the", "make sure nobody opens the"],
                  lambda rng: {"door": rng.choice(["front door", "garage", "back door"])}),
    "play_music": (["play some songs from", "put on the playlist", "I want to hear"],
                   lambda rng: {"playlist": rng.choice(["jazz", "morning", "rock"])}),
}


def function_calling_example(rng: random.Random, index: int) -> dict[str, Any]:
    """One cookbook-style line: the request, the call the assistant makes, the tools it is given."""
    name = rng.choice(sorted(FUNCTIONS))
    phrases, arguments = REQUESTS[name]
    args = arguments(rng)
    request = f"{rng.choice(phrases)} {' '.join(str(v) for v in args.values())} (request {index})"
    call = {"id": f"call_{index}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
    return {
        "messages": [SYSTEM, {"role": "user", "content": request}, {"role": "assistant", "tool_calls": [call]}],
        "tools": TOOLS,
        "parallel_tool_calls": False,
    }


def function_calling_file(n: int, seed: int = 0) -> bytes:
    """n cookbook-style lines as JSONL bytes."""
    rng = random.Random(seed)
    return "".join(json.dumps(function_calling_example(rng, i)) + "\n" for i in range(n)).encode()
