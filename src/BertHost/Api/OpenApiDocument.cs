using System.Text;

namespace BertHost.Api;

/// <summary>
/// The OpenAPI 3.0 document served at <c>/openapi.json</c>, written by hand: the predict routes read their bodies
/// themselves (to refuse oversized ones before reading and to say where JSON is malformed), so nothing could infer
/// their schemas. A test checks that it lists exactly <see cref="ApiServer.Routes"/>.
/// </summary>
internal static class OpenApiDocument
{
    public static byte[] Utf8 { get; } = Encoding.UTF8.GetBytes(Json);

    public const string Json = """
{
  "openapi": "3.0.3",
  "info": {
    "title": "BertHost",
    "version": "1",
    "description": "One shared BERT body in memory serving task heads. Every failure is answered with the Error schema."
  },
  "paths": {
    "/v1/heads": {
      "get": {
        "operationId": "listHeads",
        "summary": "Every configured head, in configuration order, with its state.",
        "responses": {
          "200": { "description": "The heads.", "content": { "application/json": { "schema": {
            "type": "object", "required": ["heads"],
            "properties": { "heads": { "type": "array", "items": { "$ref": "#/components/schemas/Head" } } } } } } },
          "500": { "$ref": "#/components/responses/InternalError" }
        }
      }
    },
    "/v1/heads/{name}": {
      "get": {
        "operationId": "getHead",
        "summary": "One head, with its kind-specific details.",
        "parameters": [ { "$ref": "#/components/parameters/HeadName" } ],
        "responses": {
          "200": { "description": "The head.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HeadDetail" } } } },
          "404": { "$ref": "#/components/responses/NotFound" },
          "500": { "$ref": "#/components/responses/InternalError" }
        }
      }
    },
    "/v1/heads/{name}/predict": {
      "post": {
        "operationId": "predict",
        "summary": "Runs the inputs through one head; one output per input, in input order.",
        "parameters": [ { "$ref": "#/components/parameters/HeadName" } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PredictRequest" } } } },
        "responses": {
          "200": { "description": "One output per input, in input order.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PredictResponse" } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "413": { "$ref": "#/components/responses/PayloadTooLarge" },
          "415": { "$ref": "#/components/responses/UnsupportedMediaType" },
          "422": { "$ref": "#/components/responses/InvalidInput" },
          "429": { "$ref": "#/components/responses/QueueFull" },
          "500": { "$ref": "#/components/responses/InternalError" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      }
    },
    "/v1/predict": {
      "post": {
        "operationId": "predictMany",
        "summary": "Runs the inputs through several heads with one body pass per input; per input, an object keyed by head name.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PredictManyRequest" } } } },
        "responses": {
          "200": { "description": "Per input, in input order, the output of every head.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/PredictManyResponse" } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "413": { "$ref": "#/components/responses/PayloadTooLarge" },
          "415": { "$ref": "#/components/responses/UnsupportedMediaType" },
          "422": { "$ref": "#/components/responses/InvalidInput" },
          "429": { "$ref": "#/components/responses/QueueFull" },
          "500": { "$ref": "#/components/responses/InternalError" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      }
    },
    "/v1/body": {
      "get": {
        "operationId": "describeBody",
        "summary": "Facts about the shared body (model folder, fingerprint, device, dtype, sizes).",
        "responses": {
          "200": { "description": "The body.", "content": { "application/json": { "schema": { "type": "object", "additionalProperties": true } } } },
          "500": { "$ref": "#/components/responses/InternalError" }
        }
      }
    },
    "/healthz": {
      "get": {
        "operationId": "health",
        "summary": "Liveness: 200 while the process serves.",
        "responses": {
          "200": { "description": "Alive.", "content": { "application/json": { "schema": {
            "type": "object", "required": ["status"], "properties": { "status": { "type": "string", "enum": ["ok"] } } } } } }
        }
      }
    },
    "/readyz": {
      "get": {
        "operationId": "ready",
        "summary": "Readiness: 200 once the body and every head that could load are ready, 503 before that and while stopping.",
        "responses": {
          "200": { "description": "Ready.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Readiness" } } } },
          "503": { "description": "Not ready (or stopping).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Readiness" } } } }
        }
      }
    },
    "/metrics": {
      "get": {
        "operationId": "metrics",
        "summary": "Prometheus text exposition (version 0.0.4); metric names start with berthost_.",
        "responses": {
          "200": { "description": "The metrics.", "content": { "text/plain": { "schema": { "type": "string" } } } }
        }
      }
    },
    "/openapi.json": {
      "get": {
        "operationId": "openApi",
        "summary": "This document.",
        "responses": {
          "200": { "description": "The OpenAPI document.", "content": { "application/json": { "schema": { "type": "object" } } } }
        }
      }
    }
  },
  "components": {
    "parameters": {
      "HeadName": { "name": "name", "in": "path", "required": true, "description": "The head's configured name.", "schema": { "type": "string" } }
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
          "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
              "code": { "type": "string", "enum": ["bad_request", "not_found", "unknown_head", "method_not_allowed", "payload_too_large",
                "unsupported_media_type", "invalid_input", "queue_full", "unavailable", "internal_error"] },
              "message": { "type": "string", "description": "For people; malformed JSON is reported with its line and byte." },
              "field": { "type": "string", "nullable": true, "description": "The request field at fault, e.g. inputs or inputs[1].text; null when none." }
            }
          }
        }
      },
      "Head": {
        "type": "object",
        "required": ["name", "kind", "state", "labels"],
        "properties": {
          "name": { "type": "string" },
          "kind": { "type": "string" },
          "state": { "type": "string", "enum": ["ready", "failed", "stale"] },
          "error": { "type": "string", "description": "Why the head is not ready (absent when it is)." },
          "labels": { "type": "array", "items": { "type": "string" } },
          "plugin": { "type": "string", "description": "Plugin assembly path." },
          "plugin_sha256": { "type": "string", "description": "SHA-256 (hex) of the plugin assembly." }
        }
      },
      "HeadDetail": {
        "allOf": [
          { "$ref": "#/components/schemas/Head" },
          { "type": "object", "required": ["details"], "properties": {
            "details": { "type": "object", "additionalProperties": true, "description": "Kind-specific description (options in force...)." } } }
        ]
      },
      "PredictRequest": {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": false,
        "properties": {
          "inputs": { "type": "array", "minItems": 1, "description": "At most host.max_inputs_per_request items (413 above). Each is what the head's kind accepts, e.g. a string or {\"text\", \"text_pair\"}.", "items": {} },
          "parameters": { "type": "object", "additionalProperties": true, "description": "Kind-specific options for this request." }
        }
      },
      "PredictResponse": {
        "type": "object",
        "required": ["outputs"],
        "properties": { "outputs": { "type": "array", "items": {} } }
      },
      "PredictManyRequest": {
        "type": "object",
        "required": ["heads", "inputs"],
        "additionalProperties": false,
        "properties": {
          "heads": { "type": "array", "minItems": 1, "uniqueItems": true, "items": { "type": "string" } },
          "inputs": { "type": "array", "minItems": 1, "items": {} },
          "parameters": { "type": "object", "additionalProperties": true }
        }
      },
      "PredictManyResponse": {
        "type": "object",
        "required": ["outputs"],
        "properties": { "outputs": { "type": "array", "items": { "type": "object", "additionalProperties": true, "description": "Output of each head, keyed by head name." } } }
      },
      "Readiness": {
        "type": "object",
        "required": ["status", "heads"],
        "properties": {
          "status": { "type": "string", "enum": ["ready", "not_ready", "stopping"] },
          "heads": { "type": "array", "items": { "type": "object", "required": ["name", "state"], "properties": {
            "name": { "type": "string" }, "state": { "type": "string" }, "error": { "type": "string" } } } }
        }
      }
    },
    "responses": {
      "BadRequest": { "description": "Malformed JSON, wrong types, missing or empty inputs (code bad_request).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "NotFound": { "description": "Unknown head (unknown_head) or route (not_found).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "PayloadTooLarge": { "description": "Body over host.max_request_bytes or more inputs than host.max_inputs_per_request (payload_too_large).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "UnsupportedMediaType": { "description": "Content-Type is not application/json (unsupported_media_type).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "InvalidInput": { "description": "An input the head refuses; field names it, e.g. inputs[1].text (invalid_input).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "QueueFull": { "description": "The queue is full; retry after Retry-After seconds (queue_full).", "headers": { "Retry-After": { "schema": { "type": "integer" } } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unavailable": { "description": "The head failed to load or is stale, or the host is not ready or is stopping (unavailable).", "headers": { "Retry-After": { "schema": { "type": "integer" } } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "InternalError": { "description": "Unexpected failure; logged by the host, never detailed to the client (internal_error).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    }
  }
}
""";
}
