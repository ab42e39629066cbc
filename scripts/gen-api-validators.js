#!/usr/bin/env node
// Generates src/api/generated/body-validators.ts: Engine API request-body
// validators compiled ahead of time (ajv standalone code) from the body
// schemas of ../shared/specs/engine-api/swagger.yaml, so that berthd pays no
// schema compilation at start-up or on a first request.
//
// The schemas are reduced to what Go's encoding/json enforces when dockerd
// decodes a body: JSON types only (string, integer, number, boolean, array,
// object, map values); unknown fields, enums, ranges and `required` are not
// decoding errors there, and null is the zero value (nulls are dropped
// before validation, see src/api/validate.ts). Values that parse but cannot
// work are checked by the domain code, not here.
//
// Run after the swagger changes: node scripts/gen-api-validators.js [swagger.yaml]
// A route gets a validator by naming its operation: router.post(path, handler, { body: 'VolumeCreate' }).
const fs = require('node:fs');
const path = require('node:path');
const yaml = require('js-yaml');
const Ajv = require('ajv').default;
const standalone = require('ajv/dist/standalone').default;

const root = path.join(__dirname, '..');
const swaggerPath = process.argv[2] ?? path.join(root, '..', 'shared', 'specs', 'engine-api', 'swagger.yaml');
const spec = yaml.load(fs.readFileSync(swaggerPath, 'utf8'));

/** Operations whose JSON bodies are validated, with the Go type dockerd decodes them into (for messages). */
const OPERATIONS = {
  ContainerCreate: 'ContainerConfig',
  ContainerUpdate: 'UpdateConfig',
  ImageCommit: 'ContainerConfig',
  ContainerExec: 'ExecConfig',
  ExecStart: 'ExecStartConfig',
  VolumeCreate: 'VolumeCreateOptions',
  VolumeUpdate: 'VolumeUpdateOptions',
  NetworkCreate: 'NetworkCreateRequest',
  NetworkConnect: 'NetworkConnectRequest',
  NetworkDisconnect: 'NetworkDisconnectRequest',
  SystemAuth: 'AuthConfig',
};

const KEEP = new Set(['type', 'properties', 'items', 'additionalProperties', 'allOf', '$ref']);

/** A swagger schema reduced to the JSON types Go's decoder checks; `title` carries the Go type for messages. */
function reduce(s) {
  if (Array.isArray(s)) return s.map(reduce);
  if (!s || typeof s !== 'object') return s;
  const out = {};
  for (const [k, v] of Object.entries(s)) {
    if (!KEEP.has(k)) continue;
    if (k === 'properties') out.properties = Object.fromEntries(Object.entries(v).map(([n, p]) => [n, reduce(p)]));
    else if (k === 'additionalProperties') out.additionalProperties = typeof v === 'object' ? reduce(v) : true;
    else if (k === 'type' && v === 'string' && s.format === 'binary') continue;
    else out[k] = typeof v === 'object' ? reduce(v) : v;
  }
  // Swagger's `type: object` with neither properties nor additionalProperties is a free-form map.
  if (out.type === 'object' && !out.properties && out.additionalProperties === undefined) out.additionalProperties = true;
  if (out.properties && out.additionalProperties === undefined) out.additionalProperties = true;
  return out;
}

function bodySchema(operationId) {
  for (const ops of Object.values(spec.paths)) {
    for (const op of Object.values(ops)) {
      if (!op || op.operationId !== operationId) continue;
      const p = (op.parameters ?? []).find((x) => x.in === 'body');
      if (p) return p.schema;
    }
  }
  throw new Error(`${operationId}: no body parameter in ${swaggerPath}`);
}

const allDefinitions = Object.fromEntries(Object.entries(spec.definitions).map(([n, d]) => [n, reduce(d)]));

/** The definitions a schema reaches through $ref, transitively (keeps the generated code small). */
function reachable(schema) {
  const seen = new Set();
  const walk = (s) => {
    if (Array.isArray(s)) { s.forEach(walk); return; }
    if (!s || typeof s !== 'object') return;
    for (const [k, v] of Object.entries(s)) {
      if (k === '$ref' && typeof v === 'string') {
        const name = v.replace('#/definitions/', '');
        if (!seen.has(name)) { seen.add(name); walk(allDefinitions[name]); }
      } else walk(v);
    }
  };
  walk(schema);
  return Object.fromEntries([...seen].sort().map((n) => [n, allDefinitions[n]]));
}

const schemas = {};
for (const op of Object.keys(OPERATIONS)) {
  const body = reduce(bodySchema(op));
  schemas[op] = { $id: op, definitions: reachable(body), ...body };
}

/**
 * Go's encoding/json matches a JSON key to a struct field exactly, else case-insensitively (docker-py sends
 * `CPURealtimePeriod` for `CpuRealtimePeriod`). Per operation, the struct field names by lower-cased key,
 * nested: { f: { lower: [Name, shape] }, i: array items' shape, m: map values' shape }; 0 for a leaf.
 */
function fieldShape(s, depth = 0) {
  if (!s || typeof s !== 'object' || depth > 24) return 0;
  if (s.$ref) return fieldShape(allDefinitions[s.$ref.replace('#/definitions/', '')], depth + 1);
  const out = {};
  const parts = s.allOf ? s.allOf.map((x) => fieldShape(x, depth + 1)).filter(Boolean) : [];
  for (const part of parts) {
    if (part.f) out.f = { ...out.f, ...part.f };
    if (part.i) out.i = part.i;
    if (part.m) out.m = part.m;
  }
  if (s.properties) {
    out.f = { ...out.f };
    for (const [name, p] of Object.entries(s.properties)) out.f[name.toLowerCase()] = [name, fieldShape(p, depth + 1)];
  }
  if (s.items) { const i = fieldShape(s.items, depth + 1); if (i) out.i = i; }
  if (s.additionalProperties && typeof s.additionalProperties === 'object') {
    const m = fieldShape(s.additionalProperties, depth + 1);
    if (m) out.m = m;
  }
  return Object.keys(out).length ? out : 0;
}
const fieldNames = Object.fromEntries(Object.keys(OPERATIONS).map((op) => [op, fieldShape(reduce(bodySchema(op)))]));

const ajv = new Ajv({ code: { source: true, esm: true, lines: false }, strict: false, allErrors: false, schemas: Object.values(schemas) });
const code = standalone(ajv, Object.fromEntries(Object.keys(schemas).map((op) => [op, op])));
const header = `// @ts-nocheck
// GENERATED by scripts/gen-api-validators.js from the Engine API swagger (${Object.keys(OPERATIONS).length} request bodies). Do not edit.
`;
const outDir = path.join(root, 'src', 'api', 'generated');
fs.mkdirSync(outDir, { recursive: true });
const goTypes = `\n/** The Go type dockerd decodes each body into (named in error messages). */\nexport const GO_TYPES = ${JSON.stringify(OPERATIONS)};\n`;
const names = `\n/** Struct field names by lower-cased JSON key, per body (Go matches keys case-insensitively). */\nexport const FIELD_NAMES = ${JSON.stringify(fieldNames)};\n`;
fs.writeFileSync(path.join(outDir, 'body-validators.ts'), header + code + goTypes + names);
console.log(`wrote src/api/generated/body-validators.ts (${Object.keys(OPERATIONS).join(', ')})`);
