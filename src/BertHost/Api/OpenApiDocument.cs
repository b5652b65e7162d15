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
    "description": "One shared BERT body in memory serving task heads. Every failure is answered with the Error schema. With an auth section every route except /healthz, /readyz and /openapi.json needs an API key (Authorization: Bearer KEY or X-Api-Key) with the route's scope: predict (heads, predict, body, metrics), train (jobs), admin (promote; implies the others). A missing or wrong key is 401, a key without the scope 403; a request over host.request_timeout_seconds is 504."
  },
  "security": [ { "bearer": [] }, { "apiKey": [] } ],
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
          "409": { "$ref": "#/components/responses/Conflict" },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "504": { "$ref": "#/components/responses/Timeout" },
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
    "/v1/jobs": {
      "post": {
        "operationId": "submitJob",
        "summary": "Queues a job (train: a head, or several with the body; pretrain: masked-LM pre-training of a body) that runs while the host keeps serving. Data is sent with the submission (inline {content, name}, or multipart file parts named after the fields) or named relative to a data root (jobs.data_roots). 404 jobs_disabled unless the deployment enables jobs; promote: true needs the admin scope (403).",
        "requestBody": { "required": true, "content": {
          "application/json": { "schema": { "$ref": "#/components/schemas/JobRequest" } },
          "multipart/form-data": { "schema": { "type": "object", "required": ["job"], "properties": {
            "job": { "$ref": "#/components/schemas/JobRequest" },
            "train": { "type": "string", "format": "binary" }, "eval": { "type": "string", "format": "binary" },
            "corpus": { "type": "array", "items": { "type": "string", "format": "binary" } }, "config": { "type": "string", "format": "binary" } },
            "description": "The job's JSON fields in the part 'job'; data files in parts named after the field they fill (also tasks[i].train, tasks[i].eval)." } } } },
        "responses": {
          "202": { "description": "Queued; Location is the job's URL.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } } },
          "401": { "$ref": "#/components/responses/Unauthorized" },
          "403": { "$ref": "#/components/responses/Forbidden" },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "404": { "$ref": "#/components/responses/NotFound" },
          "413": { "$ref": "#/components/responses/PayloadTooLarge" },
          "415": { "$ref": "#/components/responses/UnsupportedMediaType" },
          "422": { "$ref": "#/components/responses/InvalidInput" },
          "500": { "$ref": "#/components/responses/InternalError" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      },
      "get": {
        "operationId": "listJobs",
        "summary": "Every job (history included), newest first.",
        "parameters": [ { "name": "state", "in": "query", "required": false, "description": "Only jobs in this state.",
          "schema": { "type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"] } } ],
        "responses": {
          "200": { "description": "The jobs.", "content": { "application/json": { "schema": {
            "type": "object", "required": ["jobs"], "properties": { "jobs": { "type": "array", "items": { "$ref": "#/components/schemas/Job" } } } } } } },
          "400": { "$ref": "#/components/responses/BadRequest" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      }
    },
    "/v1/jobs/{id}": {
      "get": {
        "operationId": "getJob",
        "summary": "One job: state, epoch/step, running loss, rate, ETA, per-epoch results, error.",
        "parameters": [ { "$ref": "#/components/parameters/JobId" } ],
        "responses": {
          "200": { "description": "The job.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } } },
          "404": { "$ref": "#/components/responses/NotFound" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      },
      "delete": {
        "operationId": "cancelJob",
        "summary": "Cancels a queued job (200, state cancelled) or a running one (202: it stops at its next batch). The served head and body stay as they are.",
        "parameters": [ { "$ref": "#/components/parameters/JobId" } ],
        "responses": {
          "200": { "description": "Cancelled.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } } },
          "202": { "description": "Asked to stop.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } } },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      }
    },
    "/v1/jobs/{id}/promote": {
      "post": {
        "operationId": "promoteJob",
        "summary": "Serves a succeeded job's output (its head; for partial/full jobs its body too, making heads trained on the old body stale).",
        "parameters": [ { "$ref": "#/components/parameters/JobId" } ],
        "responses": {
          "200": { "description": "Promoted.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Job" } } } },
          "404": { "$ref": "#/components/responses/NotFound" },
          "409": { "$ref": "#/components/responses/Conflict" },
          "503": { "$ref": "#/components/responses/Unavailable" }
        }
      }
    },
    "/healthz": {
      "get": {
        "security": [],
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
        "security": [],
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
        "security": [],
        "operationId": "openApi",
        "summary": "This document.",
        "responses": {
          "200": { "description": "The OpenAPI document.", "content": { "application/json": { "schema": { "type": "object" } } } }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearer": { "type": "http", "scheme": "bearer", "description": "An API key of auth.keys." },
      "apiKey": { "type": "apiKey", "in": "header", "name": "X-Api-Key" }
    },
    "parameters": {
      "HeadName": { "name": "name", "in": "path", "required": true, "description": "The head's configured name.", "schema": { "type": "string" } },
      "JobId": { "name": "id", "in": "path", "required": true, "description": "The job's id.", "schema": { "type": "string" } }
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
                "unsupported_media_type", "invalid_input", "queue_full", "unavailable", "internal_error", "stale_head", "conflict", "unauthorized", "forbidden",
                "jobs_disabled", "timeout", "host_not_allowed"] },
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
      "JobRequest": { "oneOf": [ { "$ref": "#/components/schemas/TrainJobRequest" }, { "$ref": "#/components/schemas/PretrainJobRequest" } ] },
      "TrainJobRequest": {
        "type": "object",
        "description": "A train job: head and train, or (mode multitask) tasks.",
        "additionalProperties": false,
        "properties": {
          "kind": { "type": "string", "enum": ["train"], "default": "train" },
          "tasks": { "type": "array", "minItems": 2, "description": "mode multitask: the heads trained jointly with the body, each with its data.",
            "items": { "type": "object", "required": ["head", "train"], "additionalProperties": false, "properties": {
              "head": { "type": "string" }, "train": { "$ref": "#/components/schemas/Data" }, "eval": { "$ref": "#/components/schemas/Data" } } } },
          "head": { "type": "string", "description": "The head to train (it must support training)." },
          "train": { "$ref": "#/components/schemas/Data" },
          "eval": { "$ref": "#/components/schemas/Data" },
          "mode": { "type": "string", "enum": ["head", "partial", "full", "multitask"], "default": "head" },
          "epochs": { "type": "integer", "minimum": 1, "default": 3 },
          "batch_size": { "type": "integer", "minimum": 1, "default": 16 },
          "learning_rate": { "type": "number", "minimum": 0, "description": "Default 1e-3 (head), 3e-5 (partial, full)." },
          "weight_decay": { "type": "number", "minimum": 0, "default": 0.01 },
          "warmup_ratio": { "type": "number", "minimum": 0, "maximum": 1, "default": 0.1 },
          "max_grad_norm": { "type": "number", "minimum": 0, "default": 1.0 },
          "gradient_accumulation_steps": { "type": "integer", "minimum": 1, "default": 1 },
          "seed": { "type": "integer", "minimum": 0, "default": 42 },
          "partial_layers": { "type": "integer", "minimum": 1, "default": 1 },
          "patience": { "type": "integer", "minimum": 1, "description": "Early stopping after this many epochs without improvement." },
          "eval_every_epoch": { "type": "boolean", "default": true },
          "checkpoint_every": { "type": "integer", "minimum": 1, "description": "Also checkpoint every N optimizer steps (always after every epoch)." },
          "precision": { "type": "string", "enum": ["fp32", "bf16", "auto"], "default": "fp32", "description": "Arithmetic of the body's passes; fp16 is refused (422)." },
          "format": { "type": "string", "description": "Data format name; default: from the file." },
          "skip_malformed": { "type": "boolean", "default": false },
          "promote": { "type": "boolean", "description": "Serve the result when the job succeeds (true needs the admin scope); default jobs.promote == auto for head mode, jobs.body_swap == auto for partial/full." }
        }
      },
      "PretrainJobRequest": {
        "type": "object",
        "required": ["kind", "corpus"],
        "additionalProperties": false,
        "description": "Masked-LM pre-training (as berthost pretrain); give exactly one of config_size, config and from. The output body serves only when promoted (jobs.body_swap).",
        "properties": {
          "kind": { "type": "string", "enum": ["pretrain"] },
          "corpus": { "oneOf": [ { "$ref": "#/components/schemas/Data" }, { "type": "array", "items": { "$ref": "#/components/schemas/Data" }, "minItems": 1 } ], "description": "Plain-text files (.txt, .gz, .xz)." },
          "config_size": { "type": "string", "enum": ["tiny", "mini", "small", "medium", "base", "large"] },
          "config": { "$ref": "#/components/schemas/Data" },
          "from": { "type": "string", "description": "Model folder (relative to a data root) to continue from, or \"served\" (a copy of the served body)." },
          "vocab": { "type": "string", "description": "Folder (relative to a data root) with vocab.txt for a fresh model; default: the served body's." },
          "max_steps": { "type": "integer", "minimum": 1, "default": 10000 },
          "max_minutes": { "type": "number", "exclusiveMinimum": 0 },
          "batch_size": { "type": "integer", "minimum": 1, "default": 32 },
          "grad_accum": { "type": "integer", "minimum": 1, "default": 1 },
          "seq_len": { "type": "integer", "minimum": 8, "default": 128 },
          "long_seq_len": { "type": "integer", "minimum": 8 },
          "long_fraction": { "type": "number", "minimum": 0, "maximum": 1, "default": 0.1 },
          "learning_rate": { "type": "number", "exclusiveMinimum": 0, "default": 0.0005 },
          "warmup": { "type": "integer", "minimum": 0, "description": "Warmup steps; default 6 % of max_steps." },
          "weight_decay": { "type": "number", "minimum": 0, "default": 0.01 },
          "mask_prob": { "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.15 },
          "whole_word": { "type": "boolean", "default": false },
          "eval_every": { "type": "integer", "minimum": 0, "default": 500 },
          "eval_sequences": { "type": "integer", "minimum": 1, "default": 256 },
          "checkpoint_every": { "type": "integer", "minimum": 0, "default": 1000 },
          "log_every": { "type": "integer", "minimum": 1, "default": 50 },
          "seed": { "type": "integer", "minimum": 0, "default": 42 },
          "precision": { "type": "string", "enum": ["fp32", "tf32"], "default": "fp32" },
          "promote": { "type": "boolean", "description": "Serve the new body when the job succeeds (true needs the admin scope); default jobs.body_swap == auto." }
        }
      },
      "Job": {
        "type": "object",
        "required": ["id", "kind", "state", "created", "links"],
        "additionalProperties": true,
        "properties": {
          "id": { "type": "string" },
          "kind": { "type": "string" },
          "head": { "type": "string" },
          "mode": { "type": "string" },
          "heads": { "type": "array", "items": { "type": "string" }, "description": "Multitask jobs: the heads trained." },
          "state": { "type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"] },
          "options": { "type": "object", "additionalProperties": true },
          "data": { "type": "array", "items": { "type": "object", "properties": {
            "role": { "type": "string" }, "name": { "type": "string", "description": "The name the client gave (never a server path)." },
            "source": { "type": "string", "enum": ["upload", "data_root"] }, "bytes": { "type": "integer" }, "sha256": { "type": "string" } } } },
          "submitted_by": { "type": "string", "description": "The id of the API key that submitted the job." },
          "created": { "type": "string", "format": "date-time" },
          "started": { "type": "string", "format": "date-time" },
          "finished": { "type": "string", "format": "date-time" },
          "epoch": { "type": "integer" }, "epochs": { "type": "integer" }, "step": { "type": "integer" }, "total_steps": { "type": "integer" },
          "loss": { "type": "number" }, "examples_per_second": { "type": "number" }, "tokens_per_second": { "type": "number" }, "eta_seconds": { "type": "number" },
          "curve": { "type": "array", "description": "Pretrain jobs: the loss curve.", "items": { "type": "object", "properties": {
            "step": { "type": "integer" }, "train_loss": { "type": "number" }, "eval_loss": { "type": "number" }, "masked_accuracy": { "type": "number" },
            "learning_rate": { "type": "number" }, "tokens_seen": { "type": "integer" }, "seconds": { "type": "number" } } } },
          "stop_reason": { "type": "string" },
          "epoch_results": { "type": "array", "items": { "type": "object", "properties": {
            "epoch": { "type": "integer" }, "loss": { "type": "number" }, "metrics": { "type": "object", "additionalProperties": { "type": "number" } }, "seconds": { "type": "number" },
            "tasks": { "type": "object", "description": "Multitask jobs: each head's loss and metrics.", "additionalProperties": { "type": "object" } } } } },
          "best_epoch": { "type": "integer" },
          "best_metrics": { "type": "object", "additionalProperties": { "type": "number" } },
          "error": { "type": "string", "description": "Why the job failed (data errors name file and line)." },
          "body_fingerprint": { "type": "string" },
          "output_fingerprint": { "type": "string" },
          "promote": { "type": "boolean" }, "promoted": { "type": "boolean" }, "promotion_error": { "type": "string" },
          "interruptions": { "type": "integer" },
          "cancel_requested": { "type": "boolean" },
          "links": { "type": "object", "additionalProperties": { "type": "string" } }
        }
      },
      "Data": { "oneOf": [ { "type": "string", "description": "A file name relative to a data root (jobs.data_roots); absolute names and names leaving the roots are refused." },
        { "type": "object", "required": ["content"], "additionalProperties": false, "description": "The data itself.", "properties": {
          "content": { "type": "string", "description": "The file's text (JSONL, TSV, CoNLL, ...)." },
          "name": { "type": "string", "description": "A file name for records and format detection by extension, e.g. train.tsv." } } } ] },
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
      "PayloadTooLarge": { "description": "Body over host.max_request_bytes, more inputs than host.max_inputs_per_request, more tokens than host.max_input_tokens / host.max_request_tokens / batching.max_queued_tokens (counted after tokenization, windows included), or a response over host.max_response_bytes (payload_too_large; the message names the limit).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "UnsupportedMediaType": { "description": "Content-Type is not application/json (unsupported_media_type).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "InvalidInput": { "description": "An input the head refuses; field names it, e.g. inputs[1].text (invalid_input).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "QueueFull": { "description": "The queue is full; retry after Retry-After seconds (queue_full).", "headers": { "Retry-After": { "schema": { "type": "integer" } } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unavailable": { "description": "The head failed to load or failed on this input (no Retry-After: retrying does not help), or the host is stopping (Retry-After) (unavailable).", "headers": { "Retry-After": { "schema": { "type": "integer" } } }, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Conflict": { "description": "Not allowed in the job's state (conflict), or a stale head (stale_head).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unauthorized": { "description": "No API key, or not a valid one (unauthorized); WWW-Authenticate: Bearer.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Forbidden": { "description": "The key lacks the scope the route needs (forbidden).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Timeout": { "description": "The request ran longer than host.request_timeout_seconds and was cancelled (timeout).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "InternalError": { "description": "Unexpected failure; logged by the host, never detailed to the client (internal_error).", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
    }
  }
}
""";
}
