"""The JSON report: DiffResult.to_json(), the contract of issue 2, as indented text."""

from __future__ import annotations

import json


def render_json(result) -> str:
    return json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"
