"""Checks Tally's OpenAPI document and real answers against it.

Usage: openapi_check.py OPENAPI_JSON ANSWERS_JSON

OPENAPI_JSON is what `GET /api/openapi.json` served. ANSWERS_JSON is a list of
{"method", "path", "status", "content_type", "body"} recorded from real requests, with the
JSON "request" body where there was one: it must validate against the operation's request body
schema. The document
must be a valid OpenAPI 3.1 description (openapi-spec-validator), and every answer's body must
validate against the schema the document gives for its operation, status and content type, with
objects closed: a property the document does not describe is an error, so the document cannot
fall behind the code. Prints one line per failure and exits 1 if there was any.
"""

import copy
import json
import sys

import jsonschema
from openapi_spec_validator import validate as validate_spec


def closed(schema):
    """The schema with every object that lists properties closed to others."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


def main():
    doc = json.load(open(sys.argv[1]))
    answers = json.load(open(sys.argv[2]))
    validate_spec(doc)
    components = closed(copy.deepcopy(doc.get("components", {})))
    failures = []
    for answer in answers:
        where = f'{answer["method"].upper()} {answer["path"]} {answer["status"]}'
        operation = doc["paths"].get(answer["path"], {}).get(answer["method"])
        if operation is None:
            failures.append(f"{where}: the document has no such operation")
            continue
        if "request" in answer:
            request_schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if request_schema is None:
                failures.append(f"{where}: the document describes no JSON request body")
            else:
                schema = dict(closed(request_schema))
                schema["components"] = components
                for error in jsonschema.Draft202012Validator(schema).iter_errors(answer["request"]):
                    at = "/".join(str(p) for p in error.absolute_path)
                    failures.append(f"{where}: request at /{at}: {error.message[:300]}")
        response = operation.get("responses", {}).get(str(answer["status"]))
        if response is None:
            failures.append(f"{where}: the document lists no such status")
            continue
        content = response.get("content", {}).get(answer["content_type"])
        if content is None:
            failures.append(f'{where}: the document has no content {answer["content_type"]}')
            continue
        if answer["content_type"] != "application/json":
            continue
        schema = dict(closed(content.get("schema", {})))
        schema["components"] = components
        validator = jsonschema.Draft202012Validator(schema)
        for error in validator.iter_errors(answer["body"]):
            at = "/".join(str(p) for p in error.absolute_path)
            failures.append(f"{where}: at /{at}: {error.message[:300]}")
    for failure in failures:
        print(failure)
    print(f"checked the document and {len(answers)} answers: {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
